package trainer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/errs"
	"github.com/alexnet-repro/alexnet/internal/regfile"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/shards"
)

// Position is where the data pipeline stands: the epoch, and how many of
// its batches have been consumed.
type Position struct {
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
}

// Tensor is one parameter with its momentum buffer.
type Tensor struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	// CRC is the CRC-32C of the tensor's stored bytes (weights then
	// momenta), which Encode fills in: when the file's checksum fails it
	// says which tensor holds the damage, or that they are all intact and
	// the header is where it lies. Absent in checkpoints written before
	// it was kept.
	CRC uint32    `json:"crc32c,omitempty"`
	W   []float32 `json:"-"`
	V   []float32 `json:"-"`
}

func (t *Tensor) size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Checkpoint is everything needed to continue a run exactly: parameters,
// momentum, counters, the pipeline position, the seed from which every
// random draw is derived (so no generator state needs saving), and the
// schedule's state. The same file format serves every device.
type Checkpoint struct {
	Model   string `json:"model"`
	Classes int    `json:"classes"`
	// ClassList is ClassListID of the shards' classes, and Batch the
	// training batch; both are empty in checkpoints written before they
	// were kept.
	ClassList string `json:"class_list,omitempty"`
	InputHW   int    `json:"input_hw"`
	// ImageHW is the side of the shards' images the crops were taken
	// from (256 for the paper), so evaluation and predict can see a scale
	// the model never trained at; 0 in checkpoints from before it was kept.
	ImageHW int `json:"image_hw,omitempty"`
	// TrainSet is TrainSetID of the shards the run trained on: the
	// position and the shuffle order it keeps index those shards and no
	// others. Empty in checkpoints from before it was kept.
	TrainSet string `json:"train_set,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	Init     string `json:"init"`
	Seed     uint64 `json:"seed"`
	Step     int64  `json:"step"`
	Epoch    int    `json:"epoch"`
	// Epochs is the run's --epochs, the epochs it trains in all, which a
	// --resume that leaves the flag out goes on to; 0 in checkpoints from
	// before it was kept.
	Epochs   int      `json:"epochs,omitempty"`
	Position Position `json:"position"`
	Schedule Schedule `json:"schedule"`
	// Mean and Std are the normalisation the model was trained with, so
	// that evaluation and predict need nothing else.
	Mean [3]float32 `json:"mean"`
	Std  [3]float32 `json:"std"`
	// Running is what the run had summed toward its next log line and
	// its epoch's training figures; absent when nothing was (and in
	// checkpoints written before it was kept).
	Running *Running `json:"running,omitempty"`
	// Hyper is the run's SGD and lighting settings, which --resume keeps;
	// nil in checkpoints written before they were kept.
	Hyper *Hyper `json:"hyper,omitempty"`
	// LogEvery is the run's --log-every, which a --resume that leaves the
	// flag out keeps: the log's lines, and the sums Running holds toward
	// the next, follow it. nil in checkpoints written before it was kept.
	// (--checkpoint-every is not kept: it changes no bytes of a run, and
	// a checkpoint that held it would.)
	LogEvery *int `json:"log_every,omitempty"`
	// MaxValImages is the run's --max-val-images, which a --resume that
	// leaves the flag out keeps: the validation set decides the error
	// figures and a plateau schedule's drops. nil in checkpoints written
	// before it was kept.
	MaxValImages *int `json:"max_val_images,omitempty"`
	// ValSet is TrainSetID of the val split the run validated on, "none"
	// for shards without one; a resume on another goes on (no position
	// indexes it) but says so. Empty in checkpoints written before it was
	// kept.
	ValSet string `json:"val_set,omitempty"`
	// ValPending says the epoch before Position has trained but its
	// validation pass, and the schedule's step that follows from it, have
	// not run: a run stopped during that pass saves this, and --resume
	// runs them before any step.
	ValPending bool `json:"val_pending,omitempty"`
	// Arith is the saving backend's Arith: the libraries and kernels that
	// decided the bits of the run's sums. Empty in checkpoints from before
	// it was kept.
	Arith string `json:"arith,omitempty"`
	// Needs and ResumeNeeds name what a reader must understand to use the
	// checkpoint rightly, where one that skipped the field would go wrong
	// without a word: JSON readers pass over fields they do not know, so a
	// build from before val_pending resumes such a checkpoint without that
	// epoch's validation. Needs binds every reader (evaluation and predict
	// too), ResumeNeeds only a resume, so that a feature of the run's
	// state does not stop a build from reading weights it can use. Encode
	// adds what the fields call for; CheckNeeds refuses what this build
	// does not know (ErrNewerCheckpoint). Builds from before these fields
	// ignore them, as they ignore val_pending.
	Needs       []string `json:"needs,omitempty"`
	ResumeNeeds []string `json:"resume_needs,omitempty"`
	// PaperDropout: the run trained with the paper's dropout, so that
	// evaluation multiplies by 1−p (alexnet.Spec.PaperDropout). Absent in
	// checkpoints from before it was kept, whose runs were inverted.
	PaperDropout bool     `json:"paper_dropout,omitempty"`
	Tensors      []Tensor `json:"tensors"`
}

// knownNeeds and knownResumeNeeds are the needs this build understands.
var (
	knownNeeds       = map[string]bool{"paper_dropout": true}
	knownResumeNeeds = map[string]bool{"val_pending": true, "no_bias_decay": true}
)

// needs is c's Needs and ResumeNeeds with what c's fields call for,
// sorted, each once.
func (c *Checkpoint) needs() (all, resume []string) {
	resume = slices.Clone(c.ResumeNeeds)
	if c.ValPending {
		resume = append(resume, "val_pending")
	}
	if c.Hyper != nil && c.Hyper.NoBiasDecay && c.Hyper.WeightDecay != 0 {
		// A build that does not know it would resume decaying the biases
		// (at weight decay 0 there is nothing to spare them).
		resume = append(resume, "no_bias_decay")
	}
	slices.Sort(resume)
	all = slices.Clone(c.Needs)
	if c.PaperDropout {
		// A build that does not know it would evaluate without the ×(1−p).
		all = append(all, "paper_dropout")
	}
	slices.Sort(all)
	return slices.Compact(all), slices.Compact(resume)
}

// CheckNeeds refuses a checkpoint that needs what this build does not
// understand: any reader checks Needs (Decode, Load and ReadHeader do),
// and a resume ResumeNeeds as well.
func (c *Checkpoint) CheckNeeds(resume bool) error {
	check := func(needs []string, known map[string]bool, what string) error {
		for _, n := range needs {
			if !known[n] {
				return fmt.Errorf("%w: %s needs %q, which this build does not understand; use the build that wrote it, or a newer one", ErrNewerCheckpoint, what, n)
			}
		}
		return nil
	}
	if err := check(c.Needs, knownNeeds, "it"); err != nil {
		return err
	}
	if resume {
		return check(c.ResumeNeeds, knownResumeNeeds, "resuming it")
	}
	return nil
}

// Hyper is what a run's updates and augmentation use besides the
// schedule's learning rate.
type Hyper struct {
	Momentum    float64 `json:"momentum"`
	WeightDecay float64 `json:"weight_decay"`
	// Lighting is the PCA lighting σ the pipeline used: 0 when it was off,
	// the default resolved to its value.
	Lighting float32 `json:"lighting"`
	// NoBiasDecay: the biases were spared weight decay. Absent (false) in
	// checkpoints from before it was kept, whose runs decayed them.
	NoBiasDecay bool `json:"no_bias_decay,omitempty"`
}

// Running is a run's sums since its last log line and since its epoch
// began. JSON keeps float64s exactly, so a resumed run's figures are the
// uninterrupted run's, bit for bit.
type Running struct {
	LogLoss    float64 `json:"log_loss"`
	LogSteps   int     `json:"log_steps"`
	EpochLoss  float64 `json:"epoch_loss"`
	EpochSteps int     `json:"epoch_steps"`
	Hits       int     `json:"hits"` // top-1 hits in the epoch's training batches
	Seen       int     `json:"seen"` // images in them
}

var ckptMagic = [8]byte{'A', 'L', 'X', 'C', 'K', 'P', 'T', '1'}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Encode writes the checkpoint: magic, a length-prefixed JSON header, every
// tensor's weights then momentum as little-endian float32, and a CRC-32C of
// all of it. Encoding is deterministic, so equal states give equal bytes.
func (c *Checkpoint) Encode(w io.Writer) error {
	// The header carries each tensor's CRC, so the values are hashed once
	// before it is written; c itself is left as it was.
	withCRCs := *c
	withCRCs.Needs, withCRCs.ResumeNeeds = c.needs()
	withCRCs.Tensors = slices.Clone(c.Tensors)
	for i := range withCRCs.Tensors {
		t := &withCRCs.Tensors[i]
		if len(t.W) != t.size() || len(t.V) != t.size() {
			return fmt.Errorf("checkpoint: tensor %s has %d weights and %d momenta, shape %v needs %d", t.Name, len(t.W), len(t.V), t.Shape, t.size())
		}
		t.CRC = tensorCRC(t)
	}
	hdr, err := json.Marshal(&withCRCs)
	if err != nil {
		return err
	}
	h := crc32.New(crcTable)
	mw := io.MultiWriter(w, h)
	var b bytes.Buffer
	b.Write(ckptMagic[:])
	binary.Write(&b, binary.LittleEndian, uint32(len(hdr)))
	b.Write(hdr)
	if _, err := mw.Write(b.Bytes()); err != nil {
		return err
	}
	var scratch []byte
	for i := range c.Tensors {
		t := &c.Tensors[i]
		for _, s := range [][]float32{t.W, t.V} {
			if err := storedBytes(s, &scratch, func(b []byte) error { _, err := mw.Write(b); return err }); err != nil {
				return err
			}
		}
	}
	return binary.Write(w, binary.LittleEndian, h.Sum32())
}

// tensorCRC is the CRC-32C of t's values as Encode stores them.
func tensorCRC(t *Tensor) uint32 {
	var scratch []byte
	crc := uint32(0)
	for _, s := range [][]float32{t.W, t.V} {
		storedBytes(s, &scratch, func(b []byte) error { crc = crc32.Update(crc, crcTable, b); return nil })
	}
	return crc
}

// littleEndian is whether this machine stores a float32 as a checkpoint
// does, so its memory can be written and read as it is.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// chunk is the most bytes handed on, hashed or copied at once: a copy or
// a CRC of a 0.25 GB tensor in one call cannot be preempted, and the
// garbage collector's other thread spins until it ends. Decoding an
// AlexNet-sized checkpoint took 1.45–1.59 s with whole-tensor copies and
// 1.0–1.2 s in chunks (BenchmarkCheckpointDecode, 2 cores).
const chunk = 1 << 20

// storedBytes hands emit s as a checkpoint stores it, little-endian
// float32s: the memory itself, a chunk at a time, on a little-endian
// machine (an AlexNet checkpoint is 0.5 GB, and converting each value
// took most of the time of an encode), else converted a block at a time
// into *scratch. emit must not keep the slice.
func storedBytes(s []float32, scratch *[]byte, emit func([]byte) error) error {
	if len(s) == 0 {
		return nil
	}
	if littleEndian {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
		for len(b) > 0 {
			n := min(len(b), chunk)
			if err := emit(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}
	if *scratch == nil {
		*scratch = make([]byte, 1<<16)
	}
	buf := *scratch
	for len(s) > 0 {
		n := min(len(s), len(buf)/4)
		for i, v := range s[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if err := emit(buf[:4*n]); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

// crcOf is the CRC-32C of b, taken a chunk at a time.
func crcOf(b []byte) uint32 {
	crc := uint32(0)
	for len(b) > 0 {
		n := min(len(b), chunk)
		crc, b = crc32.Update(crc, crcTable, b[:n]), b[n:]
	}
	return crc
}

// loadFloats fills dst from b, little-endian float32s as a checkpoint
// stores them.
func loadFloats(dst []float32, b []byte) {
	if len(dst) == 0 {
		return
	}
	if littleEndian {
		d := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst))
		for i := 0; i < len(d); i += chunk {
			copy(d[i:min(i+chunk, len(d))], b[i:])
		}
		return
	}
	for j := range dst {
		dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
	}
}

// Save writes the checkpoint atomically (temporary file, fsync, rename), so
// a crash never leaves a torn checkpoint where a good one was.
func (c *Checkpoint) Save(path string) error {
	var b bytes.Buffer
	// Sized once: doubling up to 0.5 GB would copy the values again and
	// again.
	n := 64 << 10
	for i := range c.Tensors {
		n += 8 * len(c.Tensors[i].W)
	}
	b.Grow(n)
	if err := c.Encode(&b); err != nil {
		return err
	}
	return shards.WriteFileAtomic(path, b.Bytes())
}

// ErrCheckpoint marks a file that is not an intact checkpoint.
var ErrCheckpoint = errors.New("not an intact checkpoint")

// ErrNewerCheckpoint marks an intact checkpoint that needs what this build
// does not understand (Checkpoint.Needs): a newer build wrote it.
var ErrNewerCheckpoint = errors.New("checkpoint written by a newer build")

// Decode reads a checkpoint, checking its CRC before trusting anything.
func Decode(b []byte) (*Checkpoint, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("%w: %s", ErrCheckpoint, tooShort(int64(len(b))))
	}
	if [8]byte(b[:8]) != ckptMagic {
		return nil, fmt.Errorf("%w: %s", ErrCheckpoint, notMagic([8]byte(b[:8])))
	}
	body := b[:len(b)-4]
	if crcOf(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch%s", ErrCheckpoint, locateDamage(body))
	}
	n := int(binary.LittleEndian.Uint32(b[8:]))
	if n > len(body)-12 {
		return nil, fmt.Errorf("%w: its header says %d bytes, and the file holds %d after the first 12: the length is damaged", ErrCheckpoint, n, len(body)-12)
	}
	c, err := parseHeader(body[12:12+n], int64(len(body)-12-n))
	if err != nil {
		return nil, err
	}
	// Checked once the file is known intact, so that damage is located
	// as damage, not read as a newer build's header.
	if err := c.CheckNeeds(false); err != nil {
		return nil, err
	}
	data := body[12+n:]
	for i := range c.Tensors {
		t := &c.Tensors[i]
		sz := t.size()
		t.W, t.V = make([]float32, sz), make([]float32, sz)
		loadFloats(t.W, data[:4*sz])
		loadFloats(t.V, data[4*sz:8*sz])
		data = data[8*sz:]
	}
	return c, nil
}

// tooShort words a file too short to be a checkpoint.
func tooShort(size int64) string {
	if size == 0 {
		return "empty (0 bytes)"
	}
	return fmt.Sprintf("%d bytes, shorter than any checkpoint", size)
}

// notMagic words a file that does not begin with a checkpoint's magic: a
// few bits off is damage to a checkpoint, more is another file.
func notMagic(got [8]byte) string {
	flipped := 0
	for i := range got {
		flipped += bits.OnesCount8(got[i] ^ ckptMagic[i])
	}
	if flipped <= 2 {
		return fmt.Sprintf("its first 8 bytes are a checkpoint's but for %s: damaged", cli.Count(flipped, "flipped bit", "flipped bits"))
	}
	return "it does not begin as one (a file train did not write?)"
}

// locateDamage says where in a checkpoint whose checksum failed the damage
// lies, from the tensors' own CRCs: ", in tensor conv3.w (bytes …)", or
// ", in the header or the checksum" when every tensor is intact; or that
// the file's length does not fit its header (a torn or appended copy). It
// says nothing when the header was written before tensors had CRCs.
func locateDamage(body []byte) string {
	n := int(binary.LittleEndian.Uint32(body[8:]))
	if n > len(body)-12 {
		return ""
	}
	payload := int64(len(body) - 12 - n)
	var shapes Checkpoint
	if err := json.Unmarshal(body[12:12+n], &shapes); err != nil {
		return fmt.Sprintf(", in the header, whose JSON no longer reads (%v)", err)
	}
	need := int64(0)
	for i := range shapes.Tensors {
		sz := int64(1)
		for _, d := range shapes.Tensors[i].Shape {
			sz *= int64(max(d, 0))
			if sz > 1<<40 {
				break
			}
		}
		need += 8 * sz
		if need > 1<<44 {
			break
		}
	}
	if need != payload {
		return fmt.Sprintf(", in the file's length: its header's tensors take %d bytes and the file holds %d for them (a torn or appended copy, or a damaged header)", need, payload)
	}
	c, err := parseHeader(body[12:12+n], payload)
	if err != nil {
		return ", in the header (" + strings.TrimPrefix(err.Error(), ErrCheckpoint.Error()+": ") + ")"
	}
	off := 12 + n
	type span struct {
		name     string
		from, to int
	}
	var bad []span
	for _, t := range c.Tensors {
		end := off + 8*t.size()
		if t.CRC == 0 {
			return "" // an older checkpoint's: nothing to compare with
		}
		if crcOf(body[off:end]) != t.CRC {
			bad = append(bad, span{t.Name, off, end - 1})
		}
		off = end
	}
	// The header has no checksum of its own: a tensor that fails its CRC
	// may be intact under a damaged CRC, which the message allows for
	// (the CRCs are 4 bytes a tensor, the values most of the file).
	var names []string
	for _, b := range bad {
		names = append(names, fmt.Sprintf("tensor %s (bytes %d–%d, or its CRC in the header)", b.name, b.from, b.to))
	}
	switch others := len(c.Tensors) - len(bad); {
	case len(bad) == 0:
		return ", in the header or the checksum (every tensor is intact)"
	case len(bad) > 3:
		return fmt.Sprintf(", in %d of the %d tensors: %s, …", len(bad), len(c.Tensors), strings.Join(names[:3], ", "))
	case others == 0:
		return ", in " + strings.Join(names, " and ")
	case others == 1:
		return ", in " + strings.Join(names, " and ") + "; the other tensor is intact"
	default:
		return fmt.Sprintf(", in %s; the other %d tensors are intact", strings.Join(names, " and "), others)
	}
}

// parseHeader decodes a checkpoint's JSON header, whose CRC the caller has
// checked, and refuses values nothing may be sized or divided by, and
// tensor shapes that do not fill the payload bytes after the header
// exactly (weights and momenta, 8 bytes an element).
func parseHeader(hdr []byte, payload int64) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(hdr, &c); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCheckpoint, err)
	}
	// A header with a valid CRC can still be hand-made: numbers that size
	// buffers or divide pixels must make sense before anything uses them.
	switch {
	case c.InputHW <= 0 || c.InputHW > shards.MaxWrittenSide:
		return nil, fmt.Errorf("%w: input side %d", ErrCheckpoint, c.InputHW)
	case c.ImageHW != 0 && (c.ImageHW < c.InputHW || c.ImageHW > shards.MaxWrittenSide):
		return nil, fmt.Errorf("%w: image side %d for %d-px crops", ErrCheckpoint, c.ImageHW, c.InputHW)
	}
	// As the float32s the update uses, which the CLI checks: momentum
	// 0.999999999 is 1 there, weight decay 1e300 is +Inf.
	if h := c.Hyper; h != nil && !(h.Momentum >= 0 && float32(h.Momentum) < 1 && h.WeightDecay >= 0 && !math.IsInf(float64(float32(h.WeightDecay)), 0) &&
		h.Lighting >= 0 && !math.IsInf(float64(h.Lighting), 0)) {
		return nil, fmt.Errorf("%w: momentum %g, weight decay %g, lighting %g", ErrCheckpoint, h.Momentum, h.WeightDecay, h.Lighting)
	}
	if c.LogEvery != nil && *c.LogEvery < 0 {
		return nil, fmt.Errorf("%w: log every %d steps", ErrCheckpoint, *c.LogEvery)
	}
	if c.MaxValImages != nil && *c.MaxValImages < 0 {
		return nil, fmt.Errorf("%w: validate on at most %d images", ErrCheckpoint, *c.MaxValImages)
	}
	if c.Step < 0 || c.Epoch < 0 || c.Epochs < 0 || c.Position.Epoch < 0 || c.Position.Batch < 0 || c.Batch < 0 {
		return nil, fmt.Errorf("%w: step %d, epoch %d of %d, position %+v, batch %d", ErrCheckpoint, c.Step, c.Epoch, c.Epochs, c.Position, c.Batch)
	}
	for ch := range 3 {
		if m, sd := float64(c.Mean[ch]), float64(c.Std[ch]); !(m >= 0 && m <= 255 && sd > 0 && sd <= 255) {
			return nil, fmt.Errorf("%w: channel %d normalised by mean %g and std %g", ErrCheckpoint, ch, m, sd)
		}
	}
	for i := range c.Tensors {
		t := &c.Tensors[i]
		sz := int64(1)
		for _, d := range t.Shape {
			if d <= 0 || d > 1<<30 || sz > (1<<31)/int64(d) {
				return nil, fmt.Errorf("%w: tensor %s has shape %v", ErrCheckpoint, t.Name, t.Shape)
			}
			sz *= int64(d)
		}
		if payload < 8*sz {
			return nil, fmt.Errorf("%w: tensor %s truncated", ErrCheckpoint, t.Name)
		}
		payload -= 8 * sz
	}
	if payload != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last tensor", ErrCheckpoint, payload)
	}
	return &c, nil
}

// ReadHeader reads a checkpoint file's header (model, classes, crop,
// batch, seed, step, …; the tensors' names and shapes, without their
// values), after checking the whole file's CRC as it streams past: a
// resume's defaults come from it before Load reads the file into memory,
// and a damaged header must not pass for flags.
func ReadHeader(path string) (*Checkpoint, error) {
	f, size, pre, n, err := openCheckpoint(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := crc32.New(crcTable)
	h.Write(pre[:])
	r := io.TeeReader(io.LimitReader(f, size-4-int64(len(pre))), h)
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	var sum [4]byte
	if _, err := io.ReadFull(f, sum[:]); err != nil {
		return nil, err
	}
	if h.Sum32() != binary.LittleEndian.Uint32(sum[:]) {
		// Rare, so the file is read again whole to say where the damage is.
		where := ""
		if b, err := readCheckpointFile(path); err == nil {
			where = locateDamage(b[:len(b)-4])
		}
		return nil, fmt.Errorf("%s: %w: checksum mismatch%s", path, ErrCheckpoint, where)
	}
	c, err := parseHeader(hdr, size-16-n)
	if err == nil {
		err = c.CheckNeeds(false)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// openCheckpoint opens a checkpoint file and reads its 12-byte prefix,
// the magic and the header's length, which it checks against the file's
// size: anything else given for a checkpoint (an 8 GB tar, say) is
// refused after those 12 bytes, and a device or a pipe before it is
// opened. The file is left just after the prefix.
func openCheckpoint(path string) (f *os.File, size int64, pre [12]byte, hdrLen int64, err error) {
	if err := regularFile(path); err != nil {
		return nil, 0, pre, 0, err
	}
	if f, _, err = regfile.Open(path); err != nil { // replaced since the look above
		return nil, 0, pre, 0, err
	}
	fail := func(err error) (*os.File, int64, [12]byte, int64, error) {
		f.Close()
		return nil, 0, pre, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if size = fi.Size(); size < 16 {
		return fail(fmt.Errorf("%s: %w: %s", path, ErrCheckpoint, tooShort(size)))
	}
	if _, err := io.ReadFull(f, pre[:]); err != nil {
		return fail(fmt.Errorf("%s: %w: %v", path, ErrCheckpoint, err))
	}
	if [8]byte(pre[:8]) != ckptMagic {
		return fail(fmt.Errorf("%s: %w: %s", path, ErrCheckpoint, notMagic([8]byte(pre[:8]))))
	}
	if hdrLen = int64(binary.LittleEndian.Uint32(pre[8:])); hdrLen > size-16 {
		return fail(fmt.Errorf("%s: %w: its header says %d bytes, and the file holds %d after the first 16: cut short (a copy or a save that did not finish?), or the length is damaged", path, ErrCheckpoint, hdrLen, size-16))
	}
	return f, size, pre, hdrLen, nil
}

// regularFile refuses, before anything opens it, a path that is not a
// regular file: opening a named pipe would wait for a writer, and a device
// would be read without end.
func regularFile(path string) error {
	fi, err := os.Stat(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, pe.Err) // "stat" is not the user's word
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, not a checkpoint file", path, cli.FileKind(fi.Mode()))
	}
	return nil
}

// readCheckpointFile reads a whole checkpoint file, once its first bytes
// say it is one (openCheckpoint).
func readCheckpointFile(path string) ([]byte, error) {
	f, size, pre, _, err := openCheckpoint(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: %w: %d bytes", path, ErrCheckpoint, size)
	}
	b := make([]byte, size)
	copy(b, pre[:])
	if _, err := io.ReadFull(f, b[len(pre):]); err != nil {
		return nil, fmt.Errorf("%s: %w: %v (changed while read?)", path, ErrCheckpoint, err)
	}
	return b, nil
}

// Load reads a checkpoint file. A run folder (train's --out) stands for
// the checkpoint in it. A run's damaged checkpoint is an error that offers
// the previous one, when that is whole, to be given instead.
func Load(path string) (*Checkpoint, error) { return load(path, "give that one instead") }

// load is Load whose error offers the run's intact previous checkpoint
// with advice ("" offers nothing: a caller with advice of its own).
func load(path, advice string) (*Checkpoint, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		dir := path
		path = filepath.Join(dir, CheckpointFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(dir, shards.MetaFile)); err == nil {
				return nil, fmt.Errorf("%s is a shard directory (it holds %s), not a run folder or a checkpoint", dir, shards.MetaFile)
			}
			// A run whose latest was removed (by hand, or a failed
			// move) may still hold its previous one.
			switch prev, err := loadPrevious(dir); {
			case err != nil:
				return nil, fmt.Errorf("%s holds no %s, and the run's previous checkpoint cannot be used either: %w", dir, CheckpointFile, err)
			case prev != nil:
				return nil, fmt.Errorf("%s holds no %s, only the run's previous checkpoint, which is intact: give %s to use that one", dir, CheckpointFile, filepath.Join(dir, PrevCheckpointFile))
			}
			return nil, fmt.Errorf("%s holds no %s: not a run folder (train's --out)", dir, CheckpointFile)
		}
	}
	return loadFile(path, advice)
}

// loadFile is load for a path that must be the checkpoint file itself, as
// a run's own checkpoint is: a folder there is refused, not searched.
func loadFile(path, advice string) (*Checkpoint, error) {
	b, err := readCheckpointFile(path)
	if err == nil {
		var c *Checkpoint
		if c, err = Decode(b); err == nil {
			return c, nil
		}
		err = fmt.Errorf("%s: %w", path, err)
	}
	// A run's damaged checkpoint: its previous one may be whole, and can
	// be given instead.
	if errors.Is(err, ErrCheckpoint) && filepath.Base(path) == CheckpointFile && advice != "" {
		if note, _, _ := previousNote(filepath.Dir(path), advice); note != "" {
			err = fmt.Errorf("%w; %s", err, note)
		}
	}
	return nil, err
}

// Params gives the checkpoint's weights by name for spec, its model as this
// build defines it, after checking that the tensors are exactly spec's
// parameters, in order and shape: an element count alone would let a
// layout changed between builds (an fc input flattened another way, say)
// load and predict wrongly without a word.
func (c *Checkpoint) Params(spec alexnet.Spec) (map[string][]float32, error) {
	want := spec.Params()
	if len(c.Tensors) != len(want) {
		return nil, fmt.Errorf("it holds %d tensors, and %s at %d px with %d classes has %d parameters as this build defines it: a checkpoint from another model definition?",
			len(c.Tensors), c.Model, c.InputHW, c.Classes, len(want))
	}
	params := make(map[string][]float32, len(want))
	for i, t := range c.Tensors {
		if w := want[i]; t.Name != w.Name || !slices.Equal(t.Shape, w.Shape) {
			return nil, fmt.Errorf("tensor %d is %s %v, and %s as this build defines it has %s %v there: a checkpoint from another model definition?",
				i, t.Name, t.Shape, c.Model, w.Name, w.Shape)
		}
		params[t.Name] = t.W
	}
	return params, nil
}

// MatchesClasses says whether the checkpoint's outputs mean the classes of
// the shards in dir (meta): the same number, and, where the checkpoint
// keeps its class list, the same WNIDs in the same order. Otherwise its
// scores would be reported under the wrong names. Its error is marked
// ErrConfig: a checkpoint and shards that do not go together are a
// mistake in the command, as shards that do not fit a run's settings are.
func (c *Checkpoint) MatchesClasses(meta *shards.Meta, dir string) error {
	if c.Classes != len(meta.Classes) {
		return errs.Mark(fmt.Errorf("the checkpoint has %d classes, %s/meta.json %d", c.Classes, dir, len(meta.Classes)), ErrConfig)
	}
	if c.ClassList != "" && c.ClassList != ClassListID(meta.Classes) {
		return errs.Mark(fmt.Errorf("the checkpoint was trained on another class list than %s/meta.json's (other WNIDs, or another order)", dir), ErrConfig)
	}
	return nil
}

// CropFits says whether the model's crop fits the images of the shards in
// dir (meta), and if not, the --size to ingest them at (marked ErrConfig,
// as MatchesClasses's error is).
func (c *Checkpoint) CropFits(meta *shards.Meta, dir string) error {
	if c.InputHW <= meta.Width && c.InputHW <= meta.Height {
		return nil
	}
	size := c.ImageHW // what it trained on, where the checkpoint says
	if size == 0 {
		size = c.InputHW
	}
	return errs.Mark(fmt.Errorf("the checkpoint's %d-px crop does not fit %s's %d×%d images (it is larger than them): ingest them at --size %d",
		c.InputHW, dir, meta.Width, meta.Height, size), ErrConfig)
}

// ScaleNote says, when the shards in dir hold images of another side than
// the ones the checkpoint trained on, that objects will appear at another
// scale than in training; "" when they match or the checkpoint does not
// know. It is a note, not a refusal: testing at another scale can be
// what the user wants.
func (c *Checkpoint) ScaleNote(meta *shards.Meta, dir string) string {
	if c.ImageHW == 0 || c.ImageHW == meta.Width {
		return ""
	}
	return fmt.Sprintf("the checkpoint trained on %d-px crops of %d-px images, %s holds %d-px images: objects appear %.2f× their training size",
		c.InputHW, c.ImageHW, dir, meta.Width, float64(meta.Width)/float64(c.ImageHW))
}
