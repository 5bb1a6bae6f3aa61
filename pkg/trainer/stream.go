package trainer

import (
	"time"

	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// Streamer is a Backend that feeds itself from the pipeline and runs
// ahead of the host: the GPU backend copies batch n+1 to the device on a
// stream of its own while step n computes (pkg/feed), and the host queues
// step n+1 before it reads step n's loss, so the GPU never waits on the
// loop. Train uses this path whenever its backend is a Streamer.
//
// The loop learns a step's loss one step late, except where it must not
// run ahead: a step that ends an epoch, is due a checkpoint or is the
// last is waited for before anything else is queued, so evaluation,
// learning-rate changes and checkpoints see exactly the parameters the
// synchronous loop would.
type Streamer interface {
	Backend
	// Slots returns n pipeline slots for batches of batch crops of
	// crop×crop pixels, in the memory the backend copies from fastest
	// (page-locked on a GPU), and a function that frees them once the
	// pipeline and the stream have stopped.
	Slots(n, batch, crop int) ([]*pipeline.Slot, func() error, error)
	// Stream starts taking batches from src.
	Stream(src feed.Source) (Stream, error)
}

// Stream is a Streamer's queue of training steps, consumed by one
// goroutine.
type Stream interface {
	// Queue takes the next batch and queues its step with these
	// hyper-parameters, without waiting for it to run. It returns
	// io.EOF after the last batch.
	Queue(lr, momentum, weightDecay float32) (QueuedStep, error)
	// DataWait returns, summed over the steps timed since the last call,
	// how long the device waited for data and its total step time.
	DataWait() (wait, total time.Duration)
	// Idle says the loop has just kept the device idle on purpose
	// (evaluation, a checkpoint): the wait before the next step queued is
	// not data wait, and is not counted as such.
	Idle()
	// Close stops taking batches. It does not close the source.
	Close() error
}

// QueuedStep is a step on its way: its batch's positions (Pos, where it
// was; Resume, where a run resumed after it starts) and its result.
type QueuedStep struct {
	Pos, Resume pipeline.Position
	// Wait blocks until the step has run and returns its mean loss and
	// top-1 hits. Call it once, before queueing two more steps.
	Wait func() (loss float64, correct1 int, err error)
}

// syncStream runs an ordinary Backend through the Stream interface: each
// step runs to completion as it is queued, and the data wait is the time
// the host spent in the pipeline's Next.
type syncStream struct {
	be             Backend
	pl             *pipeline.Pipeline
	waited, worked time.Duration
}

func (s *syncStream) Queue(lr, momentum, weightDecay float32) (QueuedStep, error) {
	t0 := time.Now()
	slot, err := s.pl.Next()
	if err != nil {
		return QueuedStep{}, err
	}
	t1 := time.Now()
	loss, c1, err := s.be.Step(slot, lr, momentum, weightDecay)
	q := QueuedStep{Pos: slot.Pos, Resume: slot.Resume, Wait: func() (float64, int, error) { return loss, c1, err }}
	slot.Release()
	s.waited += t1.Sub(t0)
	s.worked += time.Since(t1)
	return q, nil
}

func (s *syncStream) DataWait() (time.Duration, time.Duration) {
	w, t := s.waited, s.waited+s.worked
	s.waited, s.worked = 0, 0
	return w, t
}

// Idle does nothing: the synchronous loop times only Next and Step.
func (s *syncStream) Idle() {}

func (s *syncStream) Close() error { return nil }
