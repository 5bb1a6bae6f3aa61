package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// Source delivers filled slots in order: a *pipeline.Pipeline.
type Source interface {
	Next() (*pipeline.Slot, error)
}

// Device is the GPU as the feed drives it: a copy stream, a compute
// stream, and Buffers() device buffers, each with a "ready" event (its
// copy has landed) and a "free" event (its consumer no longer reads it).
// CUDADevice implements it with pkg/cuda; the tests implement it with
// goroutines standing in for streams.
//
// Upload, Uploaded and Drain are called from the copier goroutine only; Begin,
// Free, End and Timing from the consumer's goroutine only.
type Device interface {
	// Buffers is the number of device buffers.
	Buffers() int
	// Upload queues on the copy stream: a wait for buf's free event if
	// buf has held a batch before, the copy of s's batch (s.N crops)
	// into buf, and the record of buf's ready event. It returns once
	// queued: s must stay untouched until Uploaded(buf) returns.
	Upload(seq int64, buf int, s *pipeline.Slot) error
	// Uploaded blocks until buf's last queued copy has completed.
	Uploaded(buf int) error
	// Drain blocks until everything queued on the copy stream has
	// completed. After a failed Upload, which may have queued the copy
	// before failing (and so before buf's ready mark that Uploaded waits
	// on), it is the only way to know no copy still reads the slot.
	Drain() error
	// Begin queues on the compute stream a wait for buf's ready event,
	// followed by step seq's "data arrived" timing mark.
	Begin(seq int64, buf int) error
	// Free queues on the compute stream the record of buf's free event.
	Free(buf int) error
	// End queues step seq's end-of-step timing mark.
	End(seq int64) error
	// Timing blocks until step seq's end mark has passed and returns the
	// step's times. It is asked at most once per step, in order, and
	// before step seq+4 begins, so a device may keep its marks in a ring
	// of 8.
	Timing(seq int64) (StepTiming, error)
	// Batch is buf holding a batch of n crops, as kernels address it.
	Batch(buf, n int) DeviceBatch
}

// StepTiming is one step as the device clock saw it. Times are offsets
// from an origin mark the device set when it was made.
type StepTiming struct {
	Seq       int64
	PrevEnd   time.Duration // the previous step's end (the origin for step 0)
	DataReady time.Duration // after the compute stream's wait for the batch
	End       time.Duration // this step's end
	CopyStart time.Duration // this step's batch: its copy on the copy stream
	CopyEnd   time.Duration
	HostWait  time.Duration // how long the consumer blocked in Next for it
}

// Wait is how long the compute stream waited for data before this step:
// from the previous step's end until the batch was there (pipeline,
// copy, and the consumer's own lateness in queueing the step).
func (t StepTiming) Wait() time.Duration { return max(0, t.DataReady-t.PrevEnd) }

// WaitParts splits Wait by what the compute stream was waiting on, on the
// device clock alone:
//   - input: the batch's copy had not begun (the pipeline or the copier
//     was late, or every device buffer was still in use);
//   - copy: the copy was running;
//   - host: the batch had landed, but the step was queued late (the
//     training loop's own time between steps).
//
// The three add up to Wait. A goal on the data wait is the first two;
// the third is the loop's, not the feed's.
func (t StepTiming) WaitParts() (input, copy, host time.Duration) {
	w := t.Wait()
	if w <= 0 {
		return 0, 0, 0
	}
	end := t.PrevEnd + w                             // DataReady, clamped as Wait is
	clip := func(a, b time.Duration) time.Duration { // the part of [a, b] inside [PrevEnd, end]
		return max(0, min(b, end)-max(a, t.PrevEnd))
	}
	input = clip(t.PrevEnd, t.CopyStart)
	copy = clip(t.CopyStart, t.CopyEnd)
	return input, copy, w - input - copy
}

// Total is the step's wall time on the compute stream, wait included.
func (t StepTiming) Total() time.Duration { return max(0, t.End-t.PrevEnd) }

// WaitFraction is Wait/Total.
func (t StepTiming) WaitFraction() float64 {
	if t.Total() <= 0 {
		return 0
	}
	return float64(t.Wait()) / float64(t.Total())
}

// Stats sums the steps whose timings are in: every step but the first,
// whose "previous end" is the device's origin and so includes start-up.
type Stats struct {
	Steps    int
	Wait     time.Duration // compute stream waiting for data
	Total    time.Duration // compute stream wall time
	HostWait time.Duration // consumer blocked in Next
	// Wait split by StepTiming.WaitParts: the batch's copy not begun,
	// running, or landed with the step queued late.
	InputWait, CopyWait, LoopWait time.Duration
	MaxWait                       float64 // largest single-step WaitFraction
	Overlap                       int     // steps during which the next batch's copy started before the step ended
}

// WaitFraction is the data-wait share of the compute stream's time.
func (s Stats) WaitFraction() float64 {
	if s.Total <= 0 {
		return 0
	}
	return float64(s.Wait) / float64(s.Total)
}

// Options tune a Feed.
type Options struct {
	// Log receives one line per step (or per LogEvery steps) with its
	// data-wait fraction; nil logs nothing.
	Log      io.Writer
	LogEvery int
	// OnTiming, when set, is called with every step's timing, in order,
	// on the consumer's goroutine.
	OnTiming func(StepTiming)
}

// Feed moves batches from a Source to device buffers ahead of the steps
// that use them; see the package documentation.
type Feed struct {
	src Source
	dev Device
	opt Options

	free chan int  // buffers the copier may fill (tokens)
	out  chan item // batches handed to the consumer, and the final error
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{} // closed when the copier has exited

	// release hands a slot back to its pipeline (newFeed's, so that tests
	// can watch the order of releases).
	release func(*pipeline.Slot)

	// Consumer state.
	next     int64     // the Seq the next Next returns
	open     []*Batch  // delivered, not yet ended, oldest first
	unharv   []int64   // ended, timing not yet read
	hostWait []hostRec // host waits of steps whose timing is pending
	prev     *StepTiming
	stats    Stats
	mu       sync.Mutex // guards stats for Stats() from other goroutines
	closed   bool
	err      error // the terminal error once Next has returned it
	lateErr  error // a terminal error End met after its step was queued: Close returns it too
}

type item struct {
	b   *Batch
	err error
}

type hostRec struct {
	seq  int64
	wait time.Duration
}

// Batch is one batch on its way through the device: where it lies, and
// the pipeline metadata the training loop needs once the slot has gone
// back to the pipeline.
type Batch struct {
	Seq    int64
	Dev    DeviceBatch
	N      int
	Crop   int
	Views  int
	Pos    pipeline.Position
	Resume pipeline.Position

	buf   int
	state batchState
}

type batchState int

const (
	delivered batchState = iota
	begun
	freed
	ended
)

// New starts the copier goroutine, which takes slots from src, uploads
// each into a free device buffer and gives the slot back to the pipeline
// as soon as its copy has landed. Close stops it.
func New(src Source, dev Device, opt Options) (*Feed, error) {
	return newFeed(src, dev, opt, (*pipeline.Slot).Release)
}

// newFeed is New with the way slots go back to their pipeline left open,
// so the tests can watch the releases; it is set before the copier
// starts, as anything the copier reads must be.
func newFeed(src Source, dev Device, opt Options, release func(*pipeline.Slot)) (*Feed, error) {
	n := dev.Buffers()
	if n < 1 || n > 4 {
		return nil, fmt.Errorf("feed: %d device buffers; want 1 to 4", n)
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &Feed{
		src: src, dev: dev, opt: opt,
		free: make(chan int, n),
		// At most n batches are ever delivered and not yet freed (one
		// per token), plus the final error: the copier never blocks on
		// out.
		out:     make(chan item, n+1),
		ctx:     ctx,
		stop:    stop,
		done:    make(chan struct{}),
		release: release,
	}
	for b := range n {
		f.free <- b
	}
	go f.copier()
	return f, nil
}

// copier is the feed's one goroutine. Per batch: take a slot from the
// source, a free buffer, queue the upload, hand the batch to the consumer
// (whose compute stream waits for the copy on the device, not here), then
// wait on the host for the copy to land and release the slot.
func (f *Feed) copier() {
	defer close(f.done)
	for seq := int64(0); ; seq++ {
		// Closed is checked before each batch is asked for, and before a
		// free buffer: select picks at random among ready cases, so with
		// free buffers in hand a closed feed could otherwise go on
		// pulling batches, each a pipeline batch's wait, until they ran
		// out.
		if f.ctx.Err() != nil {
			f.out <- item{err: errClosed}
			return
		}
		s, err := f.src.Next()
		if err != nil {
			f.out <- item{err: err}
			return
		}
		var buf int
		if f.ctx.Err() == nil {
			select {
			case buf = <-f.free:
			case <-f.ctx.Done():
			}
		}
		if f.ctx.Err() != nil {
			f.release(s)
			f.out <- item{err: errClosed}
			return
		}
		if err := f.dev.Upload(seq, buf, s); err != nil {
			// The copy may have been queued before the failure: the slot
			// goes back only once the copy stream has drained, and is
			// kept (leaked to this feed) if even that fails. Its position
			// is read first: a released slot is the pipeline's to refill.
			err = fmt.Errorf("feed: copying %v: %w", s.Pos, err)
			if werr := f.dev.Drain(); werr == nil {
				f.release(s)
			} else {
				err = errors.Join(err, fmt.Errorf("the slot is kept, its copy may be in flight: %w", werr))
			}
			f.out <- item{err: err}
			return
		}
		f.out <- item{b: &Batch{Seq: seq, Dev: f.dev.Batch(buf, s.N), N: s.N, Crop: s.Crop, Views: s.Views,
			Pos: s.Pos, Resume: s.Resume, buf: buf}}
		if err := f.dev.Uploaded(buf); err != nil {
			// The slot may still be read by a copy in flight: keep it.
			f.out <- item{err: fmt.Errorf("feed: %v: waiting for its copy: %w", s.Pos, err)}
			return
		}
		f.release(s)
	}
}

var errClosed = errors.New("feed: closed")

// Next returns the next batch, in order, once its upload has been queued
// (the copy may still be in flight: Begin makes the compute stream wait
// for it). It returns io.EOF after the source's last batch, or the first
// error. At most Buffers() batches may be open (delivered and not ended).
func (f *Feed) Next() (*Batch, error) {
	if f.err != nil {
		return nil, f.err
	}
	if len(f.open) >= f.dev.Buffers() {
		return nil, fmt.Errorf("feed: Next with %d batches open; End one first", len(f.open))
	}
	t0 := time.Now()
	it := <-f.out
	if it.err != nil {
		f.err = it.err
		return nil, it.err
	}
	b := it.b
	if b.Seq != f.next {
		return nil, fmt.Errorf("feed: internal error: batch %d delivered, %d expected", b.Seq, f.next)
	}
	f.next++
	f.open = append(f.open, b)
	f.hostWait = append(f.hostWait, hostRec{b.Seq, time.Since(t0)})
	return b, nil
}

// Begin makes the compute stream wait for b's copy. Queue it before any
// work that reads b.
func (f *Feed) Begin(b *Batch) error {
	if b.state != delivered || len(f.open) == 0 || f.open[len(f.open)-1] != b {
		return fmt.Errorf("feed: Begin of batch %d out of order", b.Seq)
	}
	// The device keeps its timing marks in a ring; read the old ones
	// before their places are reused.
	if err := f.harvest(b.Seq - 3); err != nil {
		return err
	}
	if err := f.dev.Begin(b.Seq, b.buf); err != nil {
		return fmt.Errorf("feed: batch %d: %w", b.Seq, err)
	}
	b.state = begun
	return nil
}

// Free records on the compute stream that no later work reads b's
// buffer, and lets the copier fill it again. Call it as early as the
// step allows: once its inputs are normalised and its labels copied.
func (f *Feed) Free(b *Batch) error {
	if b.state != begun {
		return fmt.Errorf("feed: Free of batch %d before Begin", b.Seq)
	}
	if err := f.dev.Free(b.buf); err != nil {
		return fmt.Errorf("feed: batch %d: %w", b.Seq, err)
	}
	b.state = freed
	f.free <- b.buf // never blocks: one token per buffer
	return nil
}

// End marks the end of b's step on the compute stream, for timing, and
// collects the timing of steps that have finished. b's step is queued by
// then, update and all: a failure to mark or time it does not undo it, so
// End keeps that error for the next Next and for Close, and the caller
// counts the step (a checkpoint taken now must hold it). Only a misuse is
// End's own error.
func (f *Feed) End(b *Batch) error {
	if b.state != freed || f.open[0] != b {
		return fmt.Errorf("feed: End of batch %d before Free, or out of order", b.Seq)
	}
	b.state = ended
	f.open = f.open[1:]
	if err := f.dev.End(b.Seq); err != nil {
		f.late(fmt.Errorf("feed: batch %d: %w", b.Seq, err))
		return nil
	}
	f.unharv = append(f.unharv, b.Seq)
	f.late(f.harvest(b.Seq - 2))
	return nil
}

// late keeps err, met after a step was queued, as the feed's terminal
// error: Next and Close return it.
func (f *Feed) late(err error) {
	if err != nil && f.err == nil {
		f.err = err
		f.lateErr = err
	}
}

// harvest reads the timings of ended steps up to seq, in order.
func (f *Feed) harvest(upTo int64) error {
	for len(f.unharv) > 0 && f.unharv[0] <= upTo {
		seq := f.unharv[0]
		t, err := f.dev.Timing(seq)
		if err != nil {
			return fmt.Errorf("feed: timing of step %d: %w", seq, err)
		}
		f.unharv = f.unharv[1:]
		for len(f.hostWait) > 0 && f.hostWait[0].seq <= seq {
			if f.hostWait[0].seq == seq {
				t.HostWait = f.hostWait[0].wait
			}
			f.hostWait = f.hostWait[1:]
		}
		f.account(t)
	}
	return nil
}

func (f *Feed) account(t StepTiming) {
	f.mu.Lock()
	if t.Seq > 0 {
		s := &f.stats
		s.Steps++
		s.Wait += t.Wait()
		s.Total += t.Total()
		s.HostWait += t.HostWait
		in, cp, host := t.WaitParts()
		s.InputWait += in
		s.CopyWait += cp
		s.LoopWait += host
		s.MaxWait = max(s.MaxWait, t.WaitFraction())
	}
	// Overlap: this step's batch started copying before the previous
	// step ended, so the copy ran while the GPU computed.
	if f.prev != nil && t.CopyStart < f.prev.End {
		f.stats.Overlap++
	}
	f.mu.Unlock()
	f.prev = &t
	if f.opt.OnTiming != nil {
		f.opt.OnTiming(t)
	}
	if f.opt.Log != nil && (f.opt.LogEvery <= 1 || t.Seq%int64(f.opt.LogEvery) == 0) {
		in, cp, host := t.WaitParts()
		fmt.Fprintf(f.opt.Log, "feed: step %d data wait %.3f ms of %.3f ms (%.2f%%: input %.3f, copy %.3f, loop %.3f), copy %.3f ms, host wait %.3f ms\n",
			t.Seq, ms(t.Wait()), ms(t.Total()), 100*t.WaitFraction(), ms(in), ms(cp), ms(host), ms(t.CopyEnd-t.CopyStart), ms(t.HostWait))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Stats returns the totals so far; safe from any goroutine.
func (f *Feed) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Close stops the copier and waits for it, collects the timings of ended
// steps, and returns the first error it met. Slots the copier holds go
// back to the pipeline once their copies have landed; if it is blocked in
// the source's Next, Close waits for that Next to return, so close the
// pipeline after the feed or let it finish. Batches still open must not
// be used afterwards.
func (f *Feed) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.stop()
	err := f.lateErr
	if f.err == nil || f.err == io.EOF {
		err = f.harvest(f.next)
	}
	<-f.done
	return err
}
