package gpu

import (
	"errors"
	"fmt"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
)

// The backend streams: `train --device cuda` fills page-locked slots and
// copies batch n+1 on the feed's copy stream while step n computes.
var _ trainer.Streamer = (*Backend)(nil)

// Slots returns n page-locked slots in the Net's input layout, so the
// feed copies them straight to the device at full bus speed.
func (b *Backend) Slots(n, batch, crop int) ([]*pipeline.Slot, func() error, error) {
	l := b.net.InputLayout()
	if batch != l.Crops || crop != l.Crop {
		return nil, nil, fmt.Errorf("gpu backend: slots for %d crops of %d px, the net takes %d of %d", batch, crop, l.Crops, l.Crop)
	}
	if b.slots != nil {
		return b.slots(n, l)
	}
	dev := b.net.Device()
	if dev == nil {
		return nil, nil, errors.New("gpu backend: no CUDA device behind this net")
	}
	return feed.PinnedSlots(dev, n, l)
}

// Stream starts pkg/feed's double buffer between src and the Net: two
// device buffers, a copier goroutine on its own stream, and events that
// order the copies with the steps.
func (b *Backend) Stream(src feed.Source) (trainer.Stream, error) {
	var fd feed.Device
	var closeDev func() error
	if b.feedDevice != nil {
		var err error
		if fd, closeDev, err = b.feedDevice(b.net.InputLayout()); err != nil {
			return nil, err
		}
	} else {
		dev := b.net.Device()
		if dev == nil {
			return nil, errors.New("gpu backend: no CUDA device behind this net")
		}
		cd, err := feed.NewCUDADevice(dev, b.net.Stream(), b.net.InputLayout(), 2)
		if err != nil {
			return nil, err
		}
		fd, closeDev = cd, cd.Close
	}
	s := &stream{net: b.net, closeDev: closeDev, skip: map[int64]bool{}}
	var err error
	if s.feed, err = feed.New(src, fd, feed.Options{OnTiming: s.timing}); err != nil {
		closeDev()
		return nil, err
	}
	return s, nil
}

// stream is trainer.Stream over a Feed.
type stream struct {
	net         *Net
	feed        *feed.Feed
	closeDev    func() error
	closed      bool
	queued      int64          // steps queued: the feed's Seq of the next one
	skip        map[int64]bool // steps whose wait is the loop's own (Idle)
	wait, total time.Duration
}

// timing runs on the training loop's goroutine (feed.Options.OnTiming).
// A step's wait runs from the previous step's end mark. For the first
// step that is the device's origin (start-up), and after Idle it spans
// the loop's evaluation or checkpoint: neither is data wait, so those
// steps are left out.
func (s *stream) timing(t feed.StepTiming) {
	if t.Seq == 0 || s.skip[t.Seq] {
		delete(s.skip, t.Seq)
		return
	}
	s.wait += t.Wait()
	s.total += t.Total()
}

func (s *stream) Queue(lr, momentum, weightDecay float32) (trainer.QueuedStep, error) {
	b, p, err := s.net.StepFeed(s.feed, lr, momentum, weightDecay)
	if err != nil {
		// A step StepFeed queued before failing (its End mark) is
		// dropped with its result; Close synchronises both streams.
		return trainer.QueuedStep{}, err
	}
	s.queued++
	return trainer.QueuedStep{Pos: b.Pos, Resume: b.Resume, Wait: p.Wait}, nil
}

func (s *stream) Idle() { s.skip[s.queued] = true }

func (s *stream) DataWait() (time.Duration, time.Duration) {
	w, t := s.wait, s.total
	s.wait, s.total = 0, 0
	return w, t
}

// Close stops the copier before the device buffers go. Only the first
// call does anything: the buffers must be freed once.
func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.feed.Close(), s.closeDev())
}
