package feed

import (
	"errors"
	"fmt"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// PinnedSlots allocates n blocks of page-locked host memory (cuMemHostAlloc)
// laid out as l says, and returns pipeline slots over them, for
// pipeline.Options.Slots. Call release after the pipeline and the feed
// have stopped.
func PinnedSlots(dev *cuda.Device, n int, l Layout) (slots []*pipeline.Slot, release func() error, err error) {
	if err := l.Validate(); err != nil {
		return nil, nil, err
	}
	var blocks [][]byte
	release = func() error {
		var errs []error
		for _, b := range blocks {
			errs = append(errs, dev.HostFree(b))
		}
		blocks = nil
		return errors.Join(errs...)
	}
	for range n {
		b, err := dev.HostAlloc(l.Bytes())
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("feed: pinned slot: %w", err)
		}
		blocks = append(blocks, b)
		s, err := l.Slot(b)
		if err != nil {
			release()
			return nil, nil, err
		}
		slots = append(slots, s)
	}
	return slots, release, nil
}

// timingRing is how many steps' timing marks CUDADevice keeps; Device's
// contract (Timing before step seq+4 begins) keeps use within it, and the
// tests' fake device checks each mark recorded against the timings read.
const timingRing = 8

// CUDADevice is Device on a GPU: its own non-blocking copy stream, the
// caller's compute stream, Buffers device buffers in Layout, and the
// events that order them. Timing marks are CUDA timing events, so the
// data wait it reports is the compute stream's own idle time. The two
// events host threads wait on (a buffer's copy landed, a step ended) are
// blocking-sync events: the copier and the consumer sleep through a step
// rather than each spinning a core the pipeline's decoders need.
type CUDADevice struct {
	dev     *cuda.Device
	copy    *cuda.Stream
	compute *cuda.Stream
	layout  Layout

	bufs         []cuda.Buffer
	ready, free  []*cuda.Event
	freeRecorded []bool // written by the consumer before it hands the token over

	origin                              *cuda.Event
	copyStart, copyEnd, dataReady, ends [timingRing]*cuda.Event
	clock                               *markClock[*cuda.Event]
}

// NewCUDADevice allocates buffers device buffers for batches in layout
// l, a copy stream, and the events; compute is the stream the training
// step runs on (the Net's).
func NewCUDADevice(dev *cuda.Device, compute *cuda.Stream, l Layout, buffers int) (_ *CUDADevice, err error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if compute == nil {
		// nil means the legacy default stream, which does not order with
		// the non-blocking copy stream: the events would order nothing.
		return nil, errors.New("feed: no compute stream (the legacy default stream does not order with the copy stream)")
	}
	d := &CUDADevice{dev: dev, compute: compute, layout: l}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.copy, err = dev.NewStream(); err != nil {
		return nil, fmt.Errorf("feed: copy stream: %w", err)
	}
	for range buffers {
		b, err := dev.MemAlloc(l.Bytes())
		if err != nil {
			return nil, fmt.Errorf("feed: device buffer: %w", err)
		}
		d.bufs = append(d.bufs, b)
		ready, err := dev.NewBlockingEvent(false)
		if err != nil {
			return nil, err
		}
		d.ready = append(d.ready, ready)
		free, err := dev.NewEvent(false)
		if err != nil {
			return nil, err
		}
		d.free = append(d.free, free)
		d.freeRecorded = append(d.freeRecorded, false)
	}
	if d.origin, err = dev.NewEvent(true); err != nil {
		return nil, err
	}
	for i := range timingRing {
		for _, e := range []**cuda.Event{&d.copyStart[i], &d.copyEnd[i], &d.dataReady[i]} {
			if *e, err = dev.NewEvent(true); err != nil {
				return nil, err
			}
		}
		if d.ends[i], err = dev.NewBlockingEvent(true); err != nil {
			return nil, err
		}
	}
	d.clock = newMarkClock(d.origin, cuda.ElapsedMs)
	if err := d.origin.Record(compute); err != nil {
		return nil, err
	}
	return d, nil
}

// Buffers is the number of device buffers.
func (d *CUDADevice) Buffers() int { return len(d.bufs) }

// Batch is buffer buf holding n crops.
func (d *CUDADevice) Batch(buf, n int) DeviceBatch {
	return DeviceBatch{Base: d.bufs[buf].Ptr, Layout: d.layout, N: n}
}

// Upload queues the copy of s (a slot made by Layout.Slot over pinned
// memory) into buf on the copy stream, after buf's last consumer freed it.
func (d *CUDADevice) Upload(seq int64, buf int, s *pipeline.Slot) error {
	block, err := d.layout.Block(s)
	if err != nil {
		return err
	}
	if s.N > d.layout.Crops {
		return fmt.Errorf("feed: batch of %d crops for buffers of %d", s.N, d.layout.Crops)
	}
	if d.freeRecorded[buf] {
		if err := d.copy.WaitEvent(d.free[buf]); err != nil {
			return err
		}
	}
	r := seq % timingRing
	if err := d.copyStart[r].Record(d.copy); err != nil {
		return err
	}
	if err := d.dev.MemcpyHtoDAsync(d.bufs[buf].Ptr, block[:d.layout.CopyBytes(s.N)], d.copy); err != nil {
		return err
	}
	if err := d.copyEnd[r].Record(d.copy); err != nil {
		return err
	}
	return d.ready[buf].Record(d.copy)
}

// Uploaded waits on the host for buf's copy.
func (d *CUDADevice) Uploaded(buf int) error { return d.ready[buf].Synchronize() }

// Drain waits on the host for everything queued on the copy stream.
func (d *CUDADevice) Drain() error { return d.copy.Synchronize() }

// Begin makes the compute stream wait for buf's copy.
func (d *CUDADevice) Begin(seq int64, buf int) error {
	if err := d.compute.WaitEvent(d.ready[buf]); err != nil {
		return err
	}
	return d.dataReady[seq%timingRing].Record(d.compute)
}

// Free records buf's free event on the compute stream.
func (d *CUDADevice) Free(buf int) error {
	if err := d.free[buf].Record(d.compute); err != nil {
		return err
	}
	d.freeRecorded[buf] = true
	return nil
}

// End records step seq's end mark.
func (d *CUDADevice) End(seq int64) error { return d.ends[seq%timingRing].Record(d.compute) }

// Timing waits for step seq's end and reads its marks (see markClock).
func (d *CUDADevice) Timing(seq int64) (StepTiming, error) {
	r := seq % timingRing
	if err := d.ends[r].Synchronize(); err != nil {
		return StepTiming{}, err
	}
	return d.clock.timing(seq, stepMarks[*cuda.Event]{
		prevEnd:   d.ends[(seq+timingRing-1)%timingRing],
		dataReady: d.dataReady[r], end: d.ends[r],
		copyStart: d.copyStart[r], copyEnd: d.copyEnd[r],
	})
}

// Close waits for both streams, then frees the buffers, events and the
// copy stream. Call it after the Feed's Close.
func (d *CUDADevice) Close() error {
	var errs []error
	if d.copy != nil {
		errs = append(errs, d.copy.Synchronize())
	}
	if d.compute != nil {
		errs = append(errs, d.compute.Synchronize())
	}
	for _, b := range d.bufs {
		errs = append(errs, d.dev.MemFree(b))
	}
	d.bufs = nil
	for _, e := range append(append([]*cuda.Event{d.origin}, d.ready...), d.free...) {
		errs = append(errs, e.Destroy())
	}
	for i := range timingRing {
		for _, e := range []*cuda.Event{d.copyStart[i], d.copyEnd[i], d.dataReady[i], d.ends[i]} {
			errs = append(errs, e.Destroy())
		}
	}
	if d.copy != nil {
		errs = append(errs, d.copy.Destroy())
		d.copy = nil
	}
	return errors.Join(errs...)
}
