package feed

import (
	"fmt"
	"unsafe"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// Layout places one batch in one block of memory: Crops labels (int32),
// then Crops lighting offsets (3 float32 each), then Crops images (uint8
// HWC, Crop×Crop×3 each). A pinned host slot and a device buffer share
// the layout, so a batch of n crops crosses in one copy of CopyBytes(n)
// bytes instead of three, and the kernels find every part at a fixed
// offset from one base address.
type Layout struct {
	Crops int // crops a batch holds: images × views
	Crop  int // side of every crop
}

// LabelsAt is the byte offset of the labels: the start, so they are
// aligned like the block.
func (l Layout) LabelsAt() int { return 0 }

// OffsetsAt is the byte offset of the lighting offsets.
func (l Layout) OffsetsAt() int { return 4 * l.Crops }

// PixelsAt is the byte offset of the pixels.
func (l Layout) PixelsAt() int { return 16 * l.Crops }

// ImageBytes is one crop's pixel bytes.
func (l Layout) ImageBytes() int { return l.Crop * l.Crop * 3 }

// Bytes is the size of a full block.
func (l Layout) Bytes() int { return l.PixelsAt() + l.Crops*l.ImageBytes() }

// CopyBytes is the prefix of a block that holds a batch of n crops: every
// label and offset entry, and n images.
func (l Layout) CopyBytes(n int) int { return l.PixelsAt() + n*l.ImageBytes() }

// Validate reports a layout that cannot hold a batch.
func (l Layout) Validate() error {
	if l.Crops < 1 || l.Crop < 1 {
		return fmt.Errorf("feed: layout of %d crops of side %d: both must be positive", l.Crops, l.Crop)
	}
	return nil
}

// Slot builds a pipeline slot over mem, which must hold at least Bytes()
// bytes and start 4-byte aligned (HostAlloc's memory is page-aligned):
// Labels, Offsets and Pixels are views of mem, so what the pipeline writes
// is already in place for the copy. IDs are ordinary memory; they never
// go to the device.
func (l Layout) Slot(mem []byte) (*pipeline.Slot, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if len(mem) < l.Bytes() {
		return nil, fmt.Errorf("feed: a slot of %d crops of %d² needs %d bytes, got %d", l.Crops, l.Crop, l.Bytes(), len(mem))
	}
	if uintptr(unsafe.Pointer(&mem[0]))%4 != 0 {
		return nil, fmt.Errorf("feed: slot memory at %p is not 4-byte aligned", &mem[0])
	}
	return &pipeline.Slot{
		Labels:  unsafe.Slice((*int32)(unsafe.Pointer(&mem[l.LabelsAt()])), l.Crops),
		Offsets: unsafe.Slice((*[3]float32)(unsafe.Pointer(&mem[l.OffsetsAt()])), l.Crops),
		Pixels:  mem[l.PixelsAt():l.Bytes():l.Bytes()],
		IDs:     make([]uint64, l.Crops),
	}, nil
}

// Block returns the memory a Slot made by s was built over, from its
// Labels view, so a copy can start at the block's base. It fails for a
// slot whose parts are not laid out as l says (one from pipeline.NewSlot,
// say).
func (l Layout) Block(s *pipeline.Slot) ([]byte, error) {
	if len(s.Labels) < l.Crops || len(s.Pixels) < l.Crops*l.ImageBytes() {
		return nil, fmt.Errorf("feed: slot too small for %d crops of %d²", l.Crops, l.Crop)
	}
	base := unsafe.Pointer(&s.Labels[0])
	// Addresses compared as integers: for a slot not made by Layout.Slot,
	// base+offset points past the labels' own allocation, which
	// unsafe.Add may not produce (checkptr, under -race, aborts on it).
	at := uintptr(base)
	if uintptr(unsafe.Pointer(&s.Offsets[0])) != at+uintptr(l.OffsetsAt()) || uintptr(unsafe.Pointer(&s.Pixels[0])) != at+uintptr(l.PixelsAt()) {
		return nil, fmt.Errorf("feed: slot is not laid out as %+v (not made by Layout.Slot)", l)
	}
	return unsafe.Slice((*byte)(base), l.Bytes()), nil
}

// DeviceBatch is a batch in device memory, laid out as Layout says.
type DeviceBatch struct {
	Base   cuda.DevicePtr
	Layout Layout
	N      int // crops in the batch
}

// Labels is the address of the N int32 labels.
func (d DeviceBatch) Labels() cuda.DevicePtr { return d.Base.Add(d.Layout.LabelsAt()) }

// Offsets is the address of the N×3 float32 lighting offsets.
func (d DeviceBatch) Offsets() cuda.DevicePtr { return d.Base.Add(d.Layout.OffsetsAt()) }

// Pixels is the address of the N uint8 HWC images.
func (d DeviceBatch) Pixels() cuda.DevicePtr { return d.Base.Add(d.Layout.PixelsAt()) }
