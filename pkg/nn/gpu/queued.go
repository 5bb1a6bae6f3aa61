package gpu

import (
	"errors"
	"fmt"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// resultSlots is how many steps' results can be in flight at once.
const resultSlots = 4

// resultRing receives each step's loss and hits in pinned host memory,
// copied there at the end of the step on the compute stream, so the host
// can queue step n+1 before it reads step n's loss and the GPU never
// idles while the host reads.
type resultRing struct {
	e      *cudaEngine
	host   []byte // resultSlots × 16 bytes, pinned
	events [resultSlots]*cuda.Event
	gen    [resultSlots]uint64 // bumped each time a slot is reused
	busy   [resultSlots]bool
	next   int
}

func newResultRing(e *cudaEngine) (*resultRing, error) {
	r := &resultRing{e: e}
	var err error
	if r.host, err = e.dev.HostAlloc(16 * resultSlots); err != nil {
		return nil, err
	}
	for i := range r.events {
		// Blocking: the host waits here for a whole step when it runs ahead.
		if r.events[i], err = e.dev.NewBlockingEvent(false); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

// push queues the copy of the device result (two doubles) into the next
// slot, waiting first for that slot's previous copy if it is still in
// flight.
func (r *resultRing) push(result cuda.DevicePtr) (*Pending, error) {
	k := r.next
	if r.busy[k] {
		if err := r.events[k].Synchronize(); err != nil {
			return nil, err
		}
	}
	r.gen[k]++
	if err := r.e.dev.MemcpyDtoHAsync(r.host[16*k:16*k+16], result, r.e.stream); err != nil {
		return nil, err
	}
	if err := r.events[k].Record(r.e.stream); err != nil {
		return nil, err
	}
	r.busy[k] = true
	r.next = (k + 1) % resultSlots
	return &Pending{ring: r, slot: k, gen: r.gen[k]}, nil
}

func (r *resultRing) close() error {
	var errs []error
	for _, e := range r.events {
		errs = append(errs, e.Destroy())
	}
	if r.host != nil {
		errs = append(errs, r.e.dev.HostFree(r.host))
		r.host = nil
	}
	return errors.Join(errs...)
}

// Pending is a queued step's result.
type Pending struct {
	ring *resultRing
	slot int
	gen  uint64
	// Without a ring (the host engine of the tests) the result is known.
	loss float64
	hits int
	err  error
}

// Wait blocks until the step has run and returns its mean loss and top-1
// hits. Results older than resultSlots steps are gone: wait before
// queueing that many more.
func (p *Pending) Wait() (float64, int, error) {
	if p.ring == nil {
		return p.loss, p.hits, p.err
	}
	r := p.ring
	if r.host == nil {
		return 0, 0, errors.New("gpu: Wait for a step of a Net already closed")
	}
	if r.gen[p.slot] != p.gen {
		return 0, 0, fmt.Errorf("gpu: step result overwritten: wait for a step before queueing %d more", resultSlots)
	}
	if err := r.events[p.slot].Synchronize(); err != nil {
		return 0, 0, err
	}
	return decodeResult(r.host[16*p.slot : 16*p.slot+16])
}

// StepLoaded queues forward, backward and the SGD update for the batch
// Load put in place, and returns without waiting for the GPU (StepFeed
// strings it together with the feed's calls).
func (n *Net) StepLoaded(lr, momentum, weightDecay float32) (*Pending, error) {
	if err := n.queueTrain(); err != nil {
		return nil, err
	}
	if err := n.Update(lr, momentum, weightDecay); err != nil {
		return nil, err
	}
	if n.results == nil {
		l, h, err := n.readResult()
		return &Pending{loss: l, hits: h, err: err}, nil
	}
	return n.results.push(n.result)
}

// StepFeed takes the next batch from f and queues its whole step: the
// compute stream waits for the batch's copy, normalises it and copies its
// labels, frees the batch's buffer for the copier, then runs forward,
// backward and the update, and marks the step's end for the feed's
// data-wait timing. It returns the batch (its Pos and Resume are the
// checkpoint positions) and the step's pending result, or io.EOF after
// the last batch. Wait for each result before queueing resultSlots more
// steps; waiting for step n's after queueing step n+1 keeps the GPU busy.
func (n *Net) StepFeed(f *feed.Feed, lr, momentum, weightDecay float32) (*feed.Batch, *Pending, error) {
	b, err := f.Next()
	if err != nil {
		return nil, nil, err
	}
	if err := f.Begin(b); err != nil {
		return b, nil, err
	}
	if err := n.Load(b.Dev); err != nil {
		return b, nil, err
	}
	if err := f.Free(b); err != nil {
		return b, nil, err
	}
	p, err := n.StepLoaded(lr, momentum, weightDecay)
	if err != nil {
		return b, nil, err
	}
	return b, p, f.End(b)
}

// Stream is the compute stream every layer runs on, for the feed's
// CUDADevice; nil for a Net not on a GPU.
func (n *Net) Stream() *cuda.Stream {
	if n.cu == nil {
		return nil
	}
	return n.cu.stream
}

// Device is the GPU the Net runs on; nil for a Net not on a GPU.
func (n *Net) Device() *cuda.Device {
	if n.cu == nil {
		return nil
	}
	return n.cu.dev
}

// InputLayout is the batch layout Load expects for this net's crops.
func (n *Net) InputLayout() feed.Layout { return n.stageLay }

// Stage copies a slot's crops (any memory) into the Net's own staging
// buffer and returns that as a device batch; the copy has finished when
// it returns, so the slot may be reused at once. Benchmarks stage one
// synthetic batch and Load it every step: data already on the device.
// The staging buffer is also what TrainStep and Eval use, so a staged
// batch lasts until the next of those calls.
func (n *Net) Stage(s *pipeline.Slot) (feed.DeviceBatch, error) {
	if s.N < 1 || s.N > n.batch {
		return feed.DeviceBatch{}, fmt.Errorf("gpu: Stage of %d crops for a net of batch %d", s.N, n.batch)
	}
	if err := n.checkLabels(s.Labels[:s.N]); err != nil {
		return feed.DeviceBatch{}, err
	}
	return n.stageSlot(s, 0, s.N)
}

// AllocatedMiB is the device memory the Net allocated itself:
// parameters, activations, gradients, workspace and staging.
func (n *Net) AllocatedMiB() float64 {
	if n.cu == nil {
		return 0
	}
	return float64(n.cu.allocated) / (1 << 20)
}
