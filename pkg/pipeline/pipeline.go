package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/alexnet-repro/alexnet/augment"
	"github.com/alexnet-repro/alexnet/shards"
)

// Mode says what the pipeline does to each image.
type Mode int

const (
	// Train shuffles, and takes a random crop, mirrored half the time,
	// with a PCA lighting offset per image.
	Train Mode = iota
	// Center reads the split in canonical order and takes the centre crop.
	Center
	// TenCrop reads the split in canonical order and takes the paper's ten
	// test views of every image (see Slot for the layout).
	TenCrop
)

func (m Mode) String() string {
	switch m {
	case Train:
		return "train"
	case Center:
		return "center"
	case TenCrop:
		return "ten-crop"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Partial says what happens to a rank's last, short batch of an epoch.
type Partial int

const (
	PartialDefault Partial = iota // drop it in Train mode, keep it otherwise
	PartialDrop
	PartialKeep
)

// Options configure a Pipeline. Zero values take the defaults given.
type Options struct {
	Mode  Mode
	Split string // default "train" in Train mode, "val" otherwise
	Batch int    // images per batch; default 128
	Crop  int    // crop side; default 7/8 of the shards' side (224 from 256)
	Seed  uint64 // drives the shard permutation, the shuffle buffer and every augmentation draw

	// ShuffleBuffer is the simulated shuffle buffer in records (Train
	// only); default four times the largest shard. 1 reads records as
	// stored (shard order still permuted); the split's size or more gives
	// a uniform global shuffle.
	ShuffleBuffer int
	// Sigma is the PCA lighting coefficients' standard deviation (Train
	// only); 0 means augment.DefaultSigma, negative turns lighting off.
	Sigma float32

	Start   Position // the first batch to deliver
	Epochs  int      // stop at the end of epoch Epochs-1 (counted from 0, not from Start); 0 runs until cancelled
	Partial Partial

	Rank, World int // this process's share of every epoch; World 0 means 1

	Readers       int // read workers; default max(2, GOMAXPROCS/4)
	Decoders      int // decompress+crop workers; default GOMAXPROCS
	ReadAhead     int // read records queued for the decoders; default 2×Decoders
	MaxOpenShards int // shard Readers kept open; default 128

	// Slots are the batch buffers, each big enough for a batch (see
	// Slot); the caller owns them and must not use them elsewhere while
	// the pipeline runs: New refuses slots another pipeline holds until
	// that one is closed. Nil allocates 4 with NewSlot.
	Slots []*Slot
}

// Pipeline turns a split's shards into batches; see the package
// documentation.
type Pipeline struct {
	opt      Options // defaults resolved
	meta     *shards.Meta
	order    Order
	lo, hi   int // this rank's share of each epoch's sequence
	perEpoch int // batches per epoch for this rank
	views    int
	records  uint64 // images listed in the split, skipped ones included: IDs lie below
	classes  int

	sigma     float32 // 0: no lighting
	eigval    [3]float32
	eigvec    [3][3]float32
	mean, std [3]float32
	hasStats  bool

	cache *readerCache
	slots []*Slot
	free  chan *Slot     // slots waiting for a batch; plan takes, Release returns
	ready chan *Slot     // slots queued for delivery, in batch order, complete or not
	tasks chan task      // plan → read
	readq chan *readItem // read → decode
	bufs  chan *readItem // the record buffer pool

	liveReaders atomic.Int32 // the last reader out closes readq
	ctx         context.Context
	cancel      context.CancelFunc
	g           *errgroup.Group
	start       time.Time
	lastNext    time.Time // consumer side only
	stages      [4]stageCounters
	inflate     atomic.Int64 // nanoseconds entropy-decoding, summed over decode workers
	closeOnce   sync.Once
	closeErr    error
}

const (
	stPlan = iota
	stRead
	stDecode
	stDeliver
)

// task is one image of one batch: where to read it and where to put it.
type task struct {
	slot *Slot
	i    int32 // image index in the batch
	ref  Ref
	pos  int32 // position in this rank's epoch share, for errors
}

// readItem carries a record read and checked from the read stage to the
// decode stage. Items cycle through bufs, so their buffers, grown once to
// the largest record, are reused.
type readItem struct {
	t   task
	rec shards.Record
	buf []byte
}

// New opens the split under dir (a directory written by ingest) and
// starts the pipeline's goroutines under ctx. Cancelling ctx, or calling
// Close, stops them; Close must be called in any case.
func New(ctx context.Context, dir string, opt Options) (*Pipeline, error) {
	meta, err := shards.ReadMeta(dir)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{meta: meta, views: 1}
	if err := p.resolve(&opt); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", dir, err)
	}
	p.opt = opt
	sp := meta.Splits[opt.Split]
	// Records are numbered among all the images listed, skipped ones
	// included, so IDs lie below that count, not below Records.
	p.records = uint64(sp.Records + sp.Skipped)
	p.classes = len(meta.Classes)
	p.cache = newReaderCache(meta.ShardPaths(dir, opt.Split), sp.Shards, opt.MaxOpenShards)

	for i, s := range opt.Slots {
		if !s.owner.CompareAndSwap(nil, p) {
			for _, c := range opt.Slots[:i] {
				c.owner.Store(nil)
			}
			return nil, fmt.Errorf("pipeline: %s: slot %d belongs to a pipeline not yet closed: close it before handing its slots on", dir, i)
		}
	}
	p.free = make(chan *Slot, len(opt.Slots))
	p.ready = make(chan *Slot, len(opt.Slots))
	for _, s := range opt.Slots {
		s.free, s.done = p.free, make(chan struct{}, 1)
		s.state.Store(slotFree)
		p.free <- s
	}
	p.slots = opt.Slots
	p.tasks = make(chan task, opt.Batch)
	p.readq = make(chan *readItem, opt.ReadAhead)
	nbuf := opt.Readers + opt.ReadAhead + opt.Decoders
	p.bufs = make(chan *readItem, nbuf)
	for range nbuf {
		p.bufs <- &readItem{}
	}
	for i, st := range []struct {
		name string
		n    int
	}{{"plan", 1}, {"read", opt.Readers}, {"decode", opt.Decoders}, {"deliver", 1}} {
		p.stages[i].name, p.stages[i].workers = st.name, st.n
	}

	ctx, p.cancel = context.WithCancel(ctx)
	p.g, p.ctx = errgroup.WithContext(ctx)
	p.start = time.Now()
	p.g.Go(p.plan)
	p.liveReaders.Store(int32(opt.Readers))
	for range opt.Readers {
		p.g.Go(p.read)
	}
	for range opt.Decoders {
		p.g.Go(p.decode)
	}
	return p, nil
}

// resolve fills in defaults and checks opt against the metadata.
func (p *Pipeline) resolve(opt *Options) error {
	m := p.meta
	if opt.Split == "" {
		opt.Split = "val"
		if opt.Mode == Train {
			opt.Split = "train"
		}
	}
	sp, ok := m.Splits[opt.Split]
	if !ok {
		return errors.New(m.Missing(opt.Split))
	}
	if sp.Records == 0 {
		return fmt.Errorf("no %s records in meta.json", opt.Split)
	}
	switch opt.Mode {
	case Train, Center:
	case TenCrop:
		p.views = 10
	default:
		return fmt.Errorf("unknown mode %d", int(opt.Mode))
	}
	if opt.Batch == 0 {
		opt.Batch = 128
	}
	side := min(m.Width, m.Height)
	if opt.Crop == 0 {
		opt.Crop = side * 7 / 8
	}
	if opt.Epochs < 0 {
		return fmt.Errorf("epochs %d: want 0 (until cancelled) or more", opt.Epochs)
	}
	// A NaN σ would panic in a decode goroutine at the first record, and
	// an infinite one give NaN and infinite lighting offsets.
	if s := float64(opt.Sigma); math.IsNaN(s) || math.IsInf(s, 0) {
		return fmt.Errorf("sigma %g: want a finite number (0: the paper's %g, negative: no lighting)", s, augment.DefaultSigma)
	}
	if opt.Batch < 0 || opt.Crop <= 0 || opt.Crop > side {
		return fmt.Errorf("batch %d or crop %d out of range for %d×%d images", opt.Batch, opt.Crop, m.Width, m.Height)
	}
	if opt.World == 0 {
		opt.World = 1
	}
	if opt.World < 0 || opt.Rank < 0 || opt.Rank >= opt.World {
		return fmt.Errorf("rank %d of world %d", opt.Rank, opt.World)
	}
	counts := make([]int, len(sp.Shards))
	maxShard := 0
	for i, sh := range sp.Shards {
		counts[i] = sh.Records
		maxShard = max(maxShard, sh.Records)
	}
	if opt.ShuffleBuffer == 0 {
		opt.ShuffleBuffer = 4 * maxShard
	}
	p.order = Order{Counts: counts, Seed: opt.Seed, Shuffle: opt.Mode == Train, Buffer: opt.ShuffleBuffer}
	train := opt.Mode == Train
	p.lo, p.hi = Share(sp.Records, opt.Rank, opt.World, train)
	keep := opt.Partial == PartialKeep || opt.Partial == PartialDefault && !train
	p.perEpoch = batchCount(p.hi-p.lo, opt.Batch, keep)
	if p.perEpoch == 0 {
		return fmt.Errorf("rank %d's share of %d %s records (%d) makes no full batch of %d", opt.Rank, sp.Records, opt.Split, p.hi-p.lo, opt.Batch)
	}
	if keep && opt.Batch > p.hi-p.lo {
		// One batch holds the whole share: slots sized for the request
		// would only waste memory (--eval-batch 1000000000 on 200 images
		// ran out of it). The batches are the same.
		opt.Batch = p.hi - p.lo
	}
	if opt.Start.Batch == p.perEpoch {
		opt.Start = Position{opt.Start.Epoch + 1, 0}
	}
	if opt.Start.Epoch < 0 || opt.Start.Batch < 0 || opt.Start.Batch > p.perEpoch {
		// The fields as the caller set them (Position.String counts
		// batches from 1, as logs do).
		return fmt.Errorf("start {Epoch: %d, Batch: %d}: an epoch has %d batches, numbered from 0", opt.Start.Epoch, opt.Start.Batch, p.perEpoch)
	}
	if opt.Epochs > 0 && (opt.Start.Epoch > opt.Epochs || opt.Start.Epoch == opt.Epochs && opt.Start.Batch > 0) {
		// At the end ({Epochs, 0}) there is nothing left, which is no
		// mistake; past it, a position read wrongly would pass for one.
		return fmt.Errorf("start {Epoch: %d, Batch: %d} is past the end of %d epochs", opt.Start.Epoch, opt.Start.Batch, opt.Epochs)
	}

	if st := m.Stats; st != nil {
		p.hasStats = true
		for c := range 3 {
			p.mean[c], p.std[c] = float32(st.Mean[c]), float32(st.Std[c])
			p.eigval[c] = float32(st.PCAEigval[c])
			for i := range 3 {
				p.eigvec[c][i] = float32(st.PCAEigvec[c][i])
			}
		}
	}
	if train {
		p.sigma = augment.SigmaFor(opt.Sigma)
	}
	if p.sigma > 0 && !p.hasStats {
		return errors.New("PCA lighting needs the train statistics, and meta.json has none (set Sigma < 0 to train without lighting)")
	}

	procs := runtime.GOMAXPROCS(0)
	if opt.Decoders <= 0 {
		opt.Decoders = procs
	}
	if opt.Readers <= 0 {
		opt.Readers = max(2, procs/4)
	}
	if opt.ReadAhead <= 0 {
		opt.ReadAhead = 2 * opt.Decoders
	}
	if opt.MaxOpenShards <= 0 {
		opt.MaxOpenShards = 128
	}
	if opt.Slots == nil {
		// Four, or as many as the run has batches: NewSlot maps its pages
		// at once, and a slot no batch fills would be memory for nothing
		// (ten-crop slots of 128 images are 190 MB).
		n := 4
		if opt.Epochs > 0 {
			left := (opt.Epochs-opt.Start.Epoch)*p.perEpoch - opt.Start.Batch
			n = max(1, min(n, left))
		}
		opt.Slots = NewSlots(n, opt.Batch, p.views, opt.Crop)
	}
	if len(opt.Slots) == 0 {
		return errors.New("no slots")
	}
	seen := make(map[*Slot]bool, len(opt.Slots))
	for i, s := range opt.Slots {
		if seen[s] {
			return fmt.Errorf("slot %d is given twice", i)
		}
		seen[s] = true
		if err := s.fits(opt.Batch*p.views, opt.Crop); err != nil {
			return fmt.Errorf("slot %d: %w", i, err)
		}
	}
	return nil
}

// BatchesPerEpoch is the number of batches this rank gets every epoch.
func (p *Pipeline) BatchesPerEpoch() int { return p.perEpoch }

// Crop is the crop side in use.
func (p *Pipeline) Crop() int { return p.opt.Crop }

// Meta is the split's meta.json.
func (p *Pipeline) Meta() *shards.Meta { return p.meta }

// Options are the options in use, defaults filled in.
func (p *Pipeline) Options() Options { return p.opt }

// Normalize is s.Normalize with the train statistics from meta.json. It
// panics if meta.json has none.
func (p *Pipeline) Normalize(dst []float32, s *Slot) []float32 {
	if !p.hasStats {
		panic("pipeline: Normalize: meta.json has no train statistics")
	}
	return s.Normalize(dst, p.mean, p.std)
}

// after is the position following pos.
func (p *Pipeline) after(pos Position) Position {
	if pos.Batch+1 < p.perEpoch {
		return Position{pos.Epoch, pos.Batch + 1}
	}
	return Position{pos.Epoch + 1, 0}
}

// Next returns the next batch, in order. The caller owns the slot until it
// calls Release, and Next waits for a released slot to fill: a caller that
// holds every slot itself, with no other goroutine to release one, waits
// forever. Hold at most len(Options.Slots)−1 (3 with the default slots)
// while calling Next. Next returns io.EOF after the last epoch; once a stage
// has failed or the context is cancelled it returns the first stage error
// or the context's cause, and no more batches, even complete ones. It
// belongs to one goroutine.
func (p *Pipeline) Next() (*Slot, error) {
	c := &p.stages[stDeliver]
	t0 := time.Now()
	if !p.lastNext.IsZero() {
		c.waitOut.Add(int64(t0.Sub(p.lastNext)))
	}
	if p.ctx.Err() != nil {
		return nil, p.cause()
	}
	var s *Slot
	select {
	case x, ok := <-p.ready:
		if !ok {
			p.lastNext = time.Time{}
			return nil, io.EOF
		}
		s = x
	case <-p.ctx.Done():
		return nil, p.cause()
	}
	c.sampleDepth(len(p.ready))
	select {
	case <-s.done:
		if p.ctx.Err() != nil { // both were ready: the error wins
			return nil, p.cause()
		}
	case <-p.ctx.Done():
		return nil, p.cause()
	}
	s.state.Store(slotHeld)
	p.lastNext = time.Now()
	c.waitIn.Add(int64(p.lastNext.Sub(t0)))
	c.items.Add(1)
	return s, nil
}

func (p *Pipeline) cause() error {
	return context.Cause(p.ctx)
}

// Close stops every goroutine, waits for them, and closes the shards. It
// returns the first stage error, if any (the one Next returned).
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		err := p.g.Wait()
		p.closeErr = errors.Join(err, p.cache.close())
		// Stopped: its slots may go to another pipeline.
		for _, s := range p.slots {
			s.owner.CompareAndSwap(p, nil)
		}
	})
	return p.closeErr
}

// Metrics takes a snapshot of the stages' counters; safe to call from any
// goroutine at any time.
func (p *Pipeline) Metrics() Metrics {
	return Metrics{
		Elapsed: time.Since(p.start),
		Inflate: time.Duration(p.inflate.Load()),
		Stages: []StageMetrics{
			p.stages[stPlan].snapshot(len(p.free), cap(p.free)),
			p.stages[stRead].snapshot(len(p.tasks), cap(p.tasks)),
			p.stages[stDecode].snapshot(len(p.readq), cap(p.readq)),
			p.stages[stDeliver].snapshot(len(p.ready), cap(p.ready)),
		},
		OpenShards: p.cache.openCount(),
		FreeSlots:  len(p.free),
		Slots:      len(p.slots),
	}
}

// fail wraps a stage error with where in the run it happened, making sure
// it names the shard and record.
func (p *Pipeline) fail(t task, err error) error {
	var re *shards.RecordError
	if !errors.As(err, &re) {
		err = &shards.RecordError{Shard: p.cache.name(int(t.ref.Shard)), Index: int(t.ref.Record), Offset: -1, Err: err}
	}
	// Batches and the images in them count from 1, as a person reads them.
	return fmt.Errorf("pipeline: %v image %d (rank position %d): %w", t.slot.Pos, t.i+1, t.pos, err)
}

// plan is the single goroutine that walks the epochs: it computes each
// epoch's sequence, waits for a free slot per batch (the consumer's
// backpressure), queues the slot for delivery, then queues its images.
func (p *Pipeline) plan() error {
	defer close(p.tasks)
	c := &p.stages[stPlan]
	ctx := p.ctx
	b := p.opt.Batch
	var full []Ref
	pos := p.opt.Start
	for p.opt.Epochs == 0 || pos.Epoch < p.opt.Epochs {
		t0 := time.Now()
		_, full = p.order.Epoch(pos.Epoch, full)
		seq := full[p.lo:p.hi]
		c.busy.Add(int64(time.Since(t0)))
		for ; pos.Batch < p.perEpoch; pos.Batch++ {
			t0 := time.Now()
			c.sampleDepth(len(p.free))
			var s *Slot
			select {
			case s = <-p.free:
			case <-ctx.Done():
				return nil
			}
			t1 := time.Now()
			first := pos.Batch * b
			recs := seq[first:min(first+b, len(seq))]
			s.N, s.Crop, s.Views = len(recs)*p.views, p.opt.Crop, p.views
			s.Pos, s.Resume = pos, p.after(pos)
			s.pending.Store(int32(len(recs)))
			s.state.Store(slotFilling)
			p.ready <- s // room for every slot: never blocks
			for i, ref := range recs {
				select {
				case p.tasks <- task{slot: s, i: int32(i), ref: ref, pos: int32(first + i)}:
				case <-ctx.Done():
					return nil
				}
			}
			c.waitIn.Add(int64(t1.Sub(t0)))
			c.waitOut.Add(int64(time.Since(t1)))
			c.items.Add(1)
		}
		pos = Position{pos.Epoch + 1, 0}
	}
	close(p.ready)
	return nil
}

// read is a read worker: it fetches a task's record through the shard
// cache into a pooled buffer, which checks its CRC, and passes it on.
func (p *Pipeline) read() error {
	defer func() {
		if p.liveReaders.Add(-1) == 0 {
			close(p.readq)
		}
	}()
	c := &p.stages[stRead]
	ctx := p.ctx
	for {
		t0 := time.Now()
		var t task
		select {
		case x, ok := <-p.tasks:
			if !ok {
				return nil
			}
			t = x
		case <-ctx.Done():
			return nil
		}
		c.sampleDepth(len(p.tasks))
		t1 := time.Now()
		var it *readItem
		select {
		case it = <-p.bufs:
		case <-ctx.Done():
			return nil
		}
		t2 := time.Now()
		shard := int(t.ref.Shard)
		r, err := p.cache.acquire(shard)
		if err != nil {
			return p.fail(t, err)
		}
		it.buf, err = r.ReadRecord(int(t.ref.Record), &it.rec, it.buf)
		p.cache.release(shard)
		if err != nil {
			return p.fail(t, err)
		}
		it.t = t
		t3 := time.Now()
		select {
		case p.readq <- it:
		case <-ctx.Done():
			return nil
		}
		t4 := time.Now()
		c.waitIn.Add(int64(t1.Sub(t0)))
		c.busy.Add(int64(t3.Sub(t2)))
		c.waitOut.Add(int64(t2.Sub(t1) + t4.Sub(t3)))
		c.items.Add(1)
	}
}

// decode is a decode worker: it decompresses a record into its own
// buffer, draws the record's augmentation, writes the crop(s) straight
// into the batch slot, and signals the slot once its last image is in.
func (p *Pipeline) decode() error {
	dec, err := shards.NewDecoder()
	if err != nil {
		return err
	}
	defer dec.Close()
	w := decodeWorker{p: p, dec: dec, pcg: rand.NewPCG(0, 0)}
	w.rng = rand.New(w.pcg)
	c := &p.stages[stDecode]
	ctx := p.ctx
	for {
		t0 := time.Now()
		var it *readItem
		select {
		case x, ok := <-p.readq:
			if !ok {
				return nil
			}
			it = x
		case <-ctx.Done():
			return nil
		}
		c.sampleDepth(len(p.readq))
		t1 := time.Now()
		t := it.t
		z0 := dec.InflateTime()
		err := w.image(t, &it.rec)
		p.inflate.Add(int64(dec.InflateTime() - z0))
		p.bufs <- it // room for every item: never blocks
		if err != nil {
			return p.fail(t, err)
		}
		if t.slot.pending.Add(-1) == 0 {
			t.slot.done <- struct{}{}
		}
		c.waitIn.Add(int64(t1.Sub(t0)))
		c.busy.Add(int64(time.Since(t1)))
		c.items.Add(1)
	}
}

// decodeWorker is one decode goroutine's private state: reused so that a
// record costs no allocation here.
type decodeWorker struct {
	p   *Pipeline
	dec *shards.Decoder
	img []byte
	pcg *rand.PCG
	rng *rand.Rand
}

func (w *decodeWorker) image(t task, rec *shards.Record) error {
	p := w.p
	switch {
	case rec.Label < -1 || p.classes > 0 && int(rec.Label) >= p.classes:
		return fmt.Errorf("label %d outside the %d classes", rec.Label, p.classes)
	case rec.Label < 0 && p.opt.Mode == Train:
		return errors.New("training record has no label")
	case rec.ID >= p.records:
		return fmt.Errorf("ID %d, past the split's %d IDs (one per record or skipped file)", rec.ID, p.records)
	}
	crop := p.opt.Crop
	if m := p.meta; rec.W != m.Width || rec.H != m.Height || rec.Channels != m.Channels {
		return fmt.Errorf("%d×%d×%d image, meta.json says the shards hold %d×%d×%d", rec.W, rec.H, rec.Channels, m.Width, m.Height, m.Channels)
	}
	if rec.W < crop || rec.H < crop {
		return fmt.Errorf("%d×%d image is smaller than the %d crop", rec.W, rec.H, crop)
	}
	s, i := t.slot, int(t.i)
	switch p.opt.Mode {
	case Train:
		w.pcg.Seed(augment.RecordSeed(p.opt.Seed, s.Pos.Epoch, rec.ID))
		par := augment.Draw(w.rng, rec.W, rec.H, crop, p.sigma)
		if err := w.crop(s.Image(i), rec, par.X, par.Y, crop, par.Flip); err != nil {
			return err
		}
		var off [3]float32
		if p.sigma > 0 {
			off = augment.LightingOffset(p.eigval, p.eigvec, par.Alpha)
		}
		s.Labels[i], s.IDs[i], s.Offsets[i] = rec.Label, rec.ID, off
	case Center:
		if err := w.crop(s.Image(i), rec, (rec.W-crop)/2, (rec.H-crop)/2, crop, false); err != nil {
			return err
		}
		s.Labels[i], s.IDs[i], s.Offsets[i] = rec.Label, rec.ID, [3]float32{}
	case TenCrop:
		n := rec.W * rec.H * 3
		if cap(w.img) < n {
			w.img = make([]byte, n)
		}
		img := w.img[:n]
		if err := w.dec.Decode(img, rec.Codec, rec.Payload, rec.W, rec.H); err != nil {
			return err
		}
		var dsts [10][]uint8
		for v := range dsts {
			j := i*10 + v
			dsts[v] = s.Image(j)
			s.Labels[j], s.IDs[j], s.Offsets[j] = rec.Label, rec.ID, [3]float32{}
		}
		augment.TenCrop(dsts, img, rec.W, rec.H, crop)
	}
	return nil
}

// crop decodes the rows of rec down to the crop×crop window at (x, y) and
// copies the window into dst as they come (CenterCrop and RandomCrop's
// result, without a whole decoded image in between). For a flipped crop it
// asks for mirrored rows, in which the window starts at w−x−crop, and
// flips while copying when the decoder could not mirror.
func (w *decodeWorker) crop(dst []uint8, rec *shards.Record, x, y, crop int, flip bool) error {
	rowLen := 3 * crop
	return w.dec.DecodeRows(rec.Codec, rec.Payload, rec.W, rec.H, y+crop, flip, func(r int, row []byte, mirrored bool) {
		if r < y {
			return
		}
		d := dst[(r-y)*rowLen : (r-y+1)*rowLen]
		if mirrored {
			augment.CropRow(d, row, rec.W-x-crop, crop, false)
		} else {
			augment.CropRow(d, row, x, crop, flip)
		}
	})
}
