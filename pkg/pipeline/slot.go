package pipeline

import (
	"fmt"
	"sync/atomic"

	"github.com/alexnet-repro/alexnet/augment"
)

// Slot is one batch's memory. The caller owns the slices and may build
// them over any memory (pinned host memory for the GPU, say); the pipeline
// only writes into them. Crop j (0 ≤ j < N) occupies
// Pixels[j*Crop*Crop*3 : (j+1)*Crop*Crop*3], 8-bit RGB, HWC, and Labels[j],
// IDs[j] and Offsets[j] belong to it. In ten-crop mode crop j is view j%10
// of image j/10 (views in augment.TenCrop's order), and the label, ID and
// (zero) offset are repeated for the ten views.
type Slot struct {
	Pixels  []uint8      // at least Images*Views*Crop*Crop*3 bytes
	Labels  []int32      // at least Images*Views entries
	Offsets [][3]float32 // PCA lighting offset per crop, 0..255 units; zero outside training
	IDs     []uint64     // record IDs (canonical order within the split)

	// Set by the pipeline on delivery.
	N      int      // crops filled: images in this batch × Views
	Crop   int      // side of every crop
	Views  int      // crops per image: 1, or 10 in ten-crop mode
	Pos    Position // this batch
	Resume Position // the batch after this one, for checkpoints

	free    chan *Slot   // the pool Release returns to
	pending atomic.Int32 // images not yet written; the writer of the last signals done
	done    chan struct{}
	state   atomic.Int32 // slotFree, slotFilling or slotHeld
	// owner is the pipeline the slot was handed to, until it closes: one
	// handed to a second live pipeline would be filled by both.
	owner atomic.Pointer[Pipeline]
}

const (
	slotFree int32 = iota
	slotFilling
	slotHeld
)

// NewSlot allocates ordinary memory for a batch of images with views
// crops each (1, or 10 for ten-crop) of crop×crop pixels: the CPU
// allocator.
func NewSlot(images, views, crop int) *Slot {
	n := images * views
	return &Slot{
		Pixels:  prefault(make([]uint8, n*crop*crop*3)),
		Labels:  make([]int32, n),
		Offsets: make([][3]float32, n),
		IDs:     make([]uint64, n),
	}
}

// prefault writes one byte a page of b, so that the kernel maps the pages
// now, not while the decoders write their first batches: a batch slot is
// tens of MB, and a first-touch fault (zeroing a 4 KiB page; dearer in a
// VM) costs more than the crop copy it interrupts. It returns b.
func prefault(b []uint8) []uint8 {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 0
	}
	return b
}

// NewSlots allocates n slots with NewSlot.
func NewSlots(n, images, views, crop int) []*Slot {
	s := make([]*Slot, n)
	for i := range s {
		s[i] = NewSlot(images, views, crop)
	}
	return s
}

// fits reports whether the slot can hold crops crops of side crop.
func (s *Slot) fits(crops, crop int) error {
	if len(s.Pixels) < crops*crop*crop*3 || len(s.Labels) < crops || len(s.Offsets) < crops || len(s.IDs) < crops {
		return fmt.Errorf("slot holds %d pixel bytes, %d labels, %d offsets and %d IDs; a batch needs %d bytes and %d of each",
			len(s.Pixels), len(s.Labels), len(s.Offsets), len(s.IDs), crops*crop*crop*3, crops)
	}
	return nil
}

// Image is crop j's pixels.
func (s *Slot) Image(j int) []uint8 {
	n := s.Crop * s.Crop * 3
	return s.Pixels[j*n : (j+1)*n : (j+1)*n]
}

// Release hands the slot back to the pipeline for a later batch. The
// caller must not touch the slot afterwards. Releasing a slot twice, or
// one that was never delivered, panics: either would let two batches
// share memory.
func (s *Slot) Release() {
	if !s.state.CompareAndSwap(slotHeld, slotFree) {
		panic("pipeline: Release of a slot the caller does not hold")
	}
	// free has room for every slot, so this never blocks, even after
	// the pipeline has closed.
	s.free <- s
}

// Normalize writes the slot's N crops into dst as float32 NCHW, normalised
// with mean and std and lit with each crop's offset (augment's formula),
// and returns dst, grown if it was too short. It is the CPU backend's
// conversion; the GPU does the same on the device.
func (s *Slot) Normalize(dst []float32, mean, std [3]float32) []float32 {
	return s.NormalizeRange(dst, 0, s.N, mean, std)
}

// NormalizeRange is Normalize of crops lo to lo+n-1 alone: an evaluation
// of a ten-crop slot (10 crops an image) converts it a batch at a time,
// not 10 batches' floats at once (770 MB at 128 images of 224 px).
func (s *Slot) NormalizeRange(dst []float32, lo, n int, mean, std [3]float32) []float32 {
	if lo < 0 || n < 0 || lo+n > s.N {
		panic(fmt.Sprintf("pipeline: NormalizeRange of crops %d..%d in a slot of %d", lo, lo+n-1, s.N))
	}
	per := 3 * s.Crop * s.Crop
	need := n * per
	if cap(dst) < need {
		dst = make([]float32, need)
	}
	dst = dst[:need]
	augment.NormalizeBatch(dst, s.Pixels[lo*per:], n, s.Crop, s.Crop, mean, std, s.Offsets[lo:lo+n])
	return dst
}
