package feed

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
)

// writeShards writes a tiny train split: n records of w×w pixels in two
// shards, with ingest-like statistics so the pipeline can light them.
func writeShards(t testing.TB, dir string, n, w int) {
	t.Helper()
	enc, err := shards.NewEncoder(shards.CodecGradZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	m := &shards.Meta{FormatVersion: shards.Version, Width: w, Height: w, Channels: 3, Splits: map[string]shards.Split{},
		Stats: &shards.Stats{Pixels: 1, Mean: [3]float64{120, 115, 100}, Std: [3]float64{60, 58, 57},
			PCAEigval: [3]float64{14830, 1376, 389},
			PCAEigvec: [3][3]float64{{-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}}}}
	const classes = 5
	for c := range classes {
		m.Classes = append(m.Classes, shards.Class{Index: c, WNID: fmt.Sprintf("n%08d", c), Name: fmt.Sprint("class ", c)})
	}
	split := shards.Split{Records: n}
	id := uint64(0)
	for s, c := range []int{n / 2, n - n/2} {
		sw, err := shards.Create(filepath.Join(dir, shards.ShardName("train", s)))
		if err != nil {
			t.Fatal(err)
		}
		for range c {
			rng := rand.New(rand.NewPCG(id, 3))
			px := make([]byte, w*w*3)
			for i := range px {
				px[i] = byte(i + int(id)*7 + rng.IntN(32))
			}
			payload, err := enc.Encode(nil, px, w, w)
			if err != nil {
				t.Fatal(err)
			}
			rec := shards.Record{ID: id, Label: int32(id % classes), Name: fmt.Sprintf("img_%04d.JPEG", id),
				Codec: shards.CodecGradZstd, W: w, H: w, Channels: 3, Payload: payload}
			if err := sw.Append(&rec); err != nil {
				t.Fatal(err)
			}
			id++
		}
		info, err := sw.Close()
		if err != nil {
			t.Fatal(err)
		}
		split.Shards = append(split.Shards, info)
	}
	m.Splits["train"] = split
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
}

const (
	testBatch = 8
	testSide  = 16
	testCrop  = 12
)

var testLayout = Layout{Crops: testBatch, Crop: testCrop}

// newPipeline starts the pipeline over dir with slots laid out for the
// feed, in ordinary memory standing in for pinned memory.
func newPipeline(t testing.TB, dir string, epochs int) *pipeline.Pipeline {
	t.Helper()
	return newPipelineAt(t, dir, epochs, pipeline.Position{})
}

// newPipelineAt is newPipeline starting at start, as a resume does.
func newPipelineAt(t testing.TB, dir string, epochs int, start pipeline.Position) *pipeline.Pipeline {
	t.Helper()
	var slots []*pipeline.Slot
	for range 4 {
		s, err := testLayout.Slot(make([]byte, testLayout.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	pl, err := pipeline.New(context.Background(), dir, pipeline.Options{Mode: pipeline.Train, Batch: testBatch, Crop: testCrop,
		Seed: 9, Epochs: epochs, Start: start, Decoders: 2, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// referenceHashes runs the pipeline alone and hashes every batch's block,
// the bytes the feed must deliver, in order.
func referenceHashes(t testing.TB, dir string, epochs int) []uint64 {
	t.Helper()
	pl := newPipeline(t, dir, epochs)
	defer pl.Close()
	var out []uint64
	for {
		s, err := pl.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		block, err := testLayout.Block(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hashBytes(block[:testLayout.CopyBytes(s.N)]))
		s.Release()
	}
}

// fakeEvent is a CUDA event: records are numbered on the host when
// queued, and complete in order on their stream.
type fakeEvent struct {
	mu        sync.Mutex
	cond      *sync.Cond
	recorded  int64 // records queued
	completed int64 // records passed
	at        time.Duration
}

func newFakeEvent() *fakeEvent {
	e := &fakeEvent{}
	e.cond = sync.NewCond(&e.mu)
	return e
}

func (e *fakeEvent) queueRecord() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recorded++
	return e.recorded
}

func (e *fakeEvent) target() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recorded
}

func (e *fakeEvent) complete(n int64, at time.Duration) {
	e.mu.Lock()
	e.completed, e.at = n, at
	e.mu.Unlock()
	e.cond.Broadcast()
}

func (e *fakeEvent) wait(n int64) {
	e.mu.Lock()
	for e.completed < n {
		e.cond.Wait()
	}
	e.mu.Unlock()
}

// fakeStream runs queued operations in order on its own goroutine.
type fakeStream struct {
	q    chan func()
	done chan struct{}
}

func newFakeStream() *fakeStream {
	s := &fakeStream{q: make(chan func(), 1024), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for f := range s.q {
			f()
		}
	}()
	return s
}

func (s *fakeStream) close() { close(s.q); <-s.done }

// fakeDevice is Device with goroutines for streams and Go memory for
// buffers. Copies take copyTime, and every rule the feed must keep is
// checked where a real GPU would silently misbehave.
type fakeDevice struct {
	t        testing.TB
	start    time.Time
	copyTime time.Duration
	copy     *fakeStream
	compute  *fakeStream
	bufs     [][]byte

	ready, free  []*fakeEvent
	freeRecorded []bool

	mu            sync.Mutex
	problems      []string
	occupant      []int64 // batch each buffer holds (-1: none), set when the copy lands
	freedFor      []int64 // batch whose free event last passed on the compute stream
	issued        map[int64]time.Duration
	issuedFrees   int
	uploads       int
	maxInFlight   int
	copyTimes     map[int64][2]time.Duration
	dataReady     map[int64]time.Duration
	ends          map[int64]time.Duration
	endEv         map[int64]*fakeEvent
	landed        map[*pipeline.Slot]int64 // last batch copied out of each slot
	queuedFrom    map[*pipeline.Slot]int64 // last batch queued from each slot
	hashAtIssue   map[int64]uint64
	consumerSaw   map[int64]uint64
	waitTimingFor []int64
	timingRead    map[int64]bool
	// failUploadAt makes Upload of that batch queue its copy and then
	// fail before recording the buffer's ready mark, as a failed
	// cuEventRecord after cuMemcpyHtoDAsync would; -1 never.
	failUploadAt int64
	// failTimingAt makes Timing of that step fail, as a failed
	// cuEventElapsedTime would; -1 never.
	failTimingAt int64
}

func newFakeDevice(t testing.TB, buffers int, copyTime time.Duration) *fakeDevice {
	d := &fakeDevice{t: t, start: time.Now(), copyTime: copyTime, copy: newFakeStream(), compute: newFakeStream(),
		issued: map[int64]time.Duration{}, copyTimes: map[int64][2]time.Duration{}, dataReady: map[int64]time.Duration{},
		ends: map[int64]time.Duration{}, endEv: map[int64]*fakeEvent{}, landed: map[*pipeline.Slot]int64{},
		queuedFrom: map[*pipeline.Slot]int64{}, hashAtIssue: map[int64]uint64{}, consumerSaw: map[int64]uint64{},
		timingRead: map[int64]bool{}, failUploadAt: -1, failTimingAt: -1}
	for range buffers {
		d.bufs = append(d.bufs, make([]byte, testLayout.Bytes()))
		d.ready = append(d.ready, newFakeEvent())
		d.free = append(d.free, newFakeEvent())
		d.freeRecorded = append(d.freeRecorded, false)
		d.occupant = append(d.occupant, -1)
		d.freedFor = append(d.freedFor, -1)
	}
	t.Cleanup(func() { d.copy.close(); d.compute.close() })
	return d
}

func (d *fakeDevice) now() time.Duration { return time.Since(d.start) }

func (d *fakeDevice) problem(format string, a ...any) {
	d.mu.Lock()
	d.problems = append(d.problems, fmt.Sprintf(format, a...))
	d.mu.Unlock()
}

func (d *fakeDevice) Buffers() int { return len(d.bufs) }

// ringUse checks, as a mark of step seq is recorded, that CUDADevice's
// ring of timingRing marks would still hold what Timing has yet to read:
// step seq−timingRing's marks share seq's places, and an end mark is
// also read as the next step's PrevEnd, one step later.
func (d *fakeDevice) ringUse(seq int64, what string, back int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := seq - back; p >= 0 && !d.timingRead[p] {
		d.problems = append(d.problems, fmt.Sprintf("step %d's %s mark reuses the ring place of step %d, whose timing was not read yet", seq, what, p))
	}
}

func (d *fakeDevice) Batch(buf, n int) DeviceBatch {
	return DeviceBatch{Base: cuda.DevicePtr(0x1000 * (1 + buf)), Layout: testLayout, N: n}
}

func (d *fakeDevice) Upload(seq int64, buf int, s *pipeline.Slot) error {
	block, err := testLayout.Block(s)
	if err != nil {
		return err
	}
	block = block[:testLayout.CopyBytes(s.N)]
	d.ringUse(seq, "copy", timingRing)
	d.mu.Lock()
	d.issued[seq] = d.now()
	d.hashAtIssue[seq] = hashBytes(block)
	d.queuedFrom[s] = seq
	d.uploads++
	if inFlight := d.uploads - d.issuedFrees; inFlight > d.maxInFlight {
		d.maxInFlight = inFlight
	}
	d.mu.Unlock()
	if d.freeRecorded[buf] {
		target := d.free[buf].target()
		ev := d.free[buf]
		d.copy.q <- func() { ev.wait(target) }
	}
	if seq == d.failUploadAt {
		d.copy.q <- func() {
			time.Sleep(d.copyTime)
			d.mu.Lock()
			d.landed[s] = seq
			d.mu.Unlock()
		}
		return errors.New("fake: cuEventRecord failed after the copy was queued")
	}
	n := d.ready[buf].queueRecord()
	d.copy.q <- func() {
		t0 := d.now()
		d.mu.Lock()
		prev := d.occupant[buf]
		if prev >= 0 && d.freedFor[buf] != prev {
			d.problems = append(d.problems, fmt.Sprintf("batch %d copied into buffer %d while batch %d there was not freed", seq, buf, prev))
		}
		d.mu.Unlock()
		// The DMA reads the slot now, long after Upload returned: a slot
		// released early would have been refilled by the pipeline.
		time.Sleep(d.copyTime)
		copy(d.bufs[buf], block)
		if h := hashBytes(d.bufs[buf][:len(block)]); h != d.hashAtIssue[seq] {
			d.problem("batch %d: slot changed between Upload and its copy", seq)
		}
		d.mu.Lock()
		d.occupant[buf] = seq
		d.landed[s] = seq
		d.copyTimes[seq] = [2]time.Duration{t0, d.now()}
		d.mu.Unlock()
		d.ready[buf].complete(n, d.now())
	}
	return nil
}

func (d *fakeDevice) Uploaded(buf int) error {
	d.ready[buf].wait(d.ready[buf].target())
	return nil
}

func (d *fakeDevice) Drain() error {
	done := make(chan struct{})
	d.copy.q <- func() { close(done) }
	<-done
	return nil
}

// checkRelease stands in for Slot.Release: the slot's last queued copy
// must have landed.
func (d *fakeDevice) checkRelease(s *pipeline.Slot) {
	d.mu.Lock()
	if q, l := d.queuedFrom[s], d.landed[s]; q != l {
		d.problems = append(d.problems, fmt.Sprintf("slot released with batch %d queued but batch %d the last to land", q, l))
	}
	d.mu.Unlock()
	s.Release()
}

func (d *fakeDevice) Begin(seq int64, buf int) error {
	d.ringUse(seq, "data-ready", timingRing)
	target := d.ready[buf].target()
	ev := d.ready[buf]
	d.compute.q <- func() {
		ev.wait(target)
		d.mu.Lock()
		d.dataReady[seq] = d.now()
		d.mu.Unlock()
	}
	return nil
}

// Kernel queues work on the compute stream, as a step's kernels.
func (d *fakeDevice) Kernel(f func()) { d.compute.q <- f }

func (d *fakeDevice) Free(buf int) error {
	// A driver call takes time on the host: a copier that got the
	// buffer's token before this record was queued would run meanwhile,
	// and its copy would not wait for this free event.
	time.Sleep(50 * time.Microsecond)
	n := d.free[buf].queueRecord()
	d.compute.q <- func() {
		d.mu.Lock()
		d.freedFor[buf] = d.occupant[buf]
		d.mu.Unlock()
		d.free[buf].complete(n, d.now())
	}
	d.mu.Lock()
	d.issuedFrees++
	d.mu.Unlock()
	d.freeRecorded[buf] = true
	return nil
}

func (d *fakeDevice) End(seq int64) error {
	d.ringUse(seq, "end", timingRing-1)
	ev := newFakeEvent()
	n := ev.queueRecord()
	d.mu.Lock()
	d.endEv[seq] = ev
	d.mu.Unlock()
	d.compute.q <- func() {
		d.mu.Lock()
		d.ends[seq] = d.now()
		d.mu.Unlock()
		ev.complete(n, d.now())
	}
	return nil
}

func (d *fakeDevice) Timing(seq int64) (StepTiming, error) {
	d.mu.Lock()
	ev := d.endEv[seq]
	d.waitTimingFor = append(d.waitTimingFor, seq)
	d.timingRead[seq] = true
	d.mu.Unlock()
	if ev == nil {
		return StepTiming{}, fmt.Errorf("timing of step %d, which never ended", seq)
	}
	if seq == d.failTimingAt {
		return StepTiming{}, errors.New("CUDA_ERROR_INVALID_HANDLE (a fake)")
	}
	ev.wait(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	t := StepTiming{Seq: seq, DataReady: d.dataReady[seq], End: d.ends[seq], CopyStart: d.copyTimes[seq][0], CopyEnd: d.copyTimes[seq][1]}
	if seq > 0 {
		t.PrevEnd = d.ends[seq-1]
	}
	return t, nil
}

// countingSource counts the batches asked of a pipeline.
type countingSource struct {
	inner *pipeline.Pipeline
	delay time.Duration // a slow pipeline: each batch takes this long
	calls atomic.Int64
}

func (c *countingSource) Next() (*pipeline.Slot, error) {
	c.calls.Add(1)
	time.Sleep(c.delay)
	return c.inner.Next()
}

// consume runs steps through the feed like a training loop: Begin, a
// "normalise" kernel that reads the buffer, Free, the rest of the step,
// End, and a host wait for the step's result.
func consume(t *testing.T, f *Feed, d *fakeDevice, steps int, stepTime time.Duration) (int, error) {
	t.Helper()
	n := 0
	for steps < 0 || n < steps {
		b, err := f.Next()
		if err != nil {
			return n, err
		}
		if err := f.Begin(b); err != nil {
			return n, err
		}
		buf := b.buf
		seq := b.Seq
		size := testLayout.CopyBytes(b.N)
		d.Kernel(func() {
			// Normalising takes a while: a copy into this buffer that
			// did not wait for its free event lands meanwhile.
			time.Sleep(stepTime / 4)
			d.mu.Lock()
			d.consumerSaw[seq] = hashBytes(d.bufs[buf][:size])
			d.mu.Unlock()
		})
		if err := f.Free(b); err != nil {
			return n, err
		}
		done := make(chan struct{})
		d.Kernel(func() { time.Sleep(stepTime); close(done) })
		if err := f.End(b); err != nil {
			return n, err
		}
		<-done // the loss read-back
		n++
	}
	return n, nil
}

func TestFeedOrderWithRealPipeline(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir, 100, testSide) // 12 batches of 8 per epoch
	const epochs = 3
	want := referenceHashes(t, dir, epochs)
	if len(want) != 36 {
		t.Fatalf("reference run gave %d batches, want 36", len(want))
	}
	for _, tc := range []struct {
		name     string
		buffers  int
		copyTime time.Duration
		stepTime time.Duration
	}{
		{"double buffered, compute-bound", 2, 200 * time.Microsecond, 3 * time.Millisecond},
		{"double buffered, copy-bound", 2, 5 * time.Millisecond, 300 * time.Microsecond},
		{"single buffer", 1, time.Millisecond, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := newPipeline(t, dir, epochs)
			defer pl.Close()
			d := newFakeDevice(t, tc.buffers, tc.copyTime)
			var timings []StepTiming
			var log strings.Builder
			f, err := newFeed(pl, d, Options{OnTiming: func(s StepTiming) { timings = append(timings, s) }, Log: &log, LogEvery: 10}, d.checkRelease)
			if err != nil {
				t.Fatal(err)
			}
			n, err := consume(t, f, d, -1, tc.stepTime)
			if err != io.EOF {
				t.Fatalf("after %d steps: %v, want io.EOF", n, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, p := range d.problems {
				t.Error(p)
			}
			if n != len(want) {
				t.Fatalf("%d steps, want %d", n, len(want))
			}
			for seq, h := range want {
				if got := d.consumerSaw[int64(seq)]; got != h {
					t.Errorf("step %d read a buffer holding other bytes than the pipeline's batch %d", seq, seq)
				}
			}
			if d.maxInFlight > tc.buffers {
				t.Errorf("%d batches in flight at once, want at most %d", d.maxInFlight, tc.buffers)
			}
			if len(timings) != n {
				t.Fatalf("%d timings for %d steps", len(timings), n)
			}
			for i, tm := range timings {
				if tm.Seq != int64(i) {
					t.Fatalf("timing %d is for step %d", i, tm.Seq)
				}
			}
			// Batch n+1's copy is issued before step n completes: the
			// point of double buffering. With one buffer it cannot be.
			early := 0
			for seq := int64(0); seq+1 < int64(n); seq++ {
				if d.issued[seq+1] < d.ends[seq] {
					early++
				}
			}
			st := f.Stats()
			// A feed that waited for step n before copying batch n+1 would
			// score 0 here. On a loaded machine (CI runs packages side by
			// side on 2 cores) the pipeline itself is sometimes starved
			// for longer than a copy-bound step, and batch n+1 is then
			// simply not there to copy yet: allow a tenth of the steps
			// for that.
			if tc.buffers >= 2 && early < (n-1)*9/10 {
				t.Errorf("batch n+1's copy was issued before step n ended for only %d of %d steps", early, n-1)
			}
			// With one buffer the next copy still starts before the step
			// ends, because the buffer is freed right after it has been
			// normalised; the fake checks that it never starts earlier.
			if st.Steps != n-1 || st.Total <= 0 {
				t.Errorf("stats %+v after %d steps", st, n)
			}
			if tc.buffers >= 2 && tc.stepTime > tc.copyTime && st.Overlap < n/2 {
				t.Errorf("copy overlapped compute in %d of %d steps", st.Overlap, n)
			}
			// Copy-bound: the GPU waits for data most of the time, and
			// the measure must say so (about 80% here on an idle machine;
			// the bound leaves room for sleeps stretched by a busy one).
			if tc.copyTime > 2*tc.stepTime && st.WaitFraction() < 0.2 {
				t.Errorf("copy-bound run reports a data wait of only %.1f%%", 100*st.WaitFraction())
			}
			if !strings.Contains(log.String(), "feed: step 10 data wait") {
				t.Errorf("log lacks the step-10 line:\n%s", log.String())
			}
			t.Logf("%d steps, data wait %.1f%% (max %.1f%%), overlap %d, host wait %v",
				n, 100*st.WaitFraction(), 100*st.MaxWait, st.Overlap, st.HostWait)
		})
	}
}

// failingSource fails after good batches.
type failingSource struct {
	Source
	good int
}

func (s *failingSource) Next() (*pipeline.Slot, error) {
	if s.good == 0 {
		return nil, errors.New("shard train-00001.shard record 7: crc mismatch")
	}
	s.good--
	return s.Source.Next()
}

func TestFeedErrorsAndClose(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir, 100, testSide)
	// A resume whose pending validation was the run's last epoch starts
	// a feed over a pipeline already at its end: no batch, no copy, and
	// io.EOF at once, then a clean Close.
	t.Run("a source with no batch", func(t *testing.T) {
		pl := newPipelineAt(t, dir, 2, pipeline.Position{Epoch: 2})
		defer pl.Close()
		d := newFakeDevice(t, 2, 0)
		f, err := newFeed(pl, d, Options{}, d.checkRelease)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := consume(t, f, d, -1, 0); n != 0 || err != io.EOF {
			t.Fatalf("%d steps then %v; want none, then io.EOF", n, err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, p := range d.problems {
			t.Error(p)
		}
	})
	t.Run("source error after 5 batches", func(t *testing.T) {
		pl := newPipeline(t, dir, 0)
		defer pl.Close()
		d := newFakeDevice(t, 2, 0)
		f, err := newFeed(&failingSource{Source: pl, good: 5}, d, Options{}, d.checkRelease)
		if err != nil {
			t.Fatal(err)
		}
		n, err := consume(t, f, d, -1, 0)
		if n != 5 || err == nil || !strings.Contains(err.Error(), "crc mismatch") {
			t.Fatalf("%d steps then %v; want 5 then the crc error", n, err)
		}
		if _, err2 := f.Next(); err2 != err {
			t.Errorf("Next after the error: %v, want the same error", err2)
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	// A step's timing read fails after later steps were queued: End
	// reports nothing (its step is queued, update and all, and must be
	// counted), and the error ends the feed at the next Next and Close.
	t.Run("timing error after the step was queued", func(t *testing.T) {
		pl := newPipeline(t, dir, 0)
		defer pl.Close()
		d := newFakeDevice(t, 2, 0)
		d.failTimingAt = 3
		f, err := newFeed(pl, d, Options{}, d.checkRelease)
		if err != nil {
			t.Fatal(err)
		}
		n, err := consume(t, f, d, 20, 0)
		if n != 6 || err == nil || !strings.Contains(err.Error(), "timing of step 3") {
			t.Fatalf("%d steps counted, then %v; want 6 (step 3's timing is read as step 5 ends), then the timing error", n, err)
		}
		if err2 := f.Close(); err2 != err {
			t.Errorf("Close: %v, want the same error", err2)
		}
	})
	t.Run("close mid-stream", func(t *testing.T) {
		pl := newPipeline(t, dir, 0) // endless
		d := newFakeDevice(t, 2, 100*time.Microsecond)
		f, err := newFeed(pl, d, Options{}, d.checkRelease)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := consume(t, f, d, 7, 100*time.Microsecond); err != nil || n != 7 {
			t.Fatalf("%d steps: %v", n, err)
		}
		closed := make(chan error)
		go func() { closed <- f.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		if err := pl.Close(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline Close: %v", err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, p := range d.problems {
			t.Error(p)
		}
	})
	t.Run("failed upload keeps the slot until its copy lands", func(t *testing.T) {
		pl := newPipeline(t, dir, 0)
		d := newFakeDevice(t, 2, 20*time.Millisecond)
		d.failUploadAt = 3
		f, err := newFeed(pl, d, Options{}, d.checkRelease)
		if err != nil {
			t.Fatal(err)
		}
		n, err := consume(t, f, d, -1, 100*time.Microsecond)
		if n != 3 || err == nil || !strings.Contains(err.Error(), "cuEventRecord failed") {
			t.Errorf("%d steps, then %v; want 3 and the upload's error", n, err)
		}
		f.Close()
		pl.Close()
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, p := range d.problems {
			t.Error(p)
		}
	})
	t.Run("close does not pull more batches", func(t *testing.T) {
		// The pipeline is slower than the steps, so when Close comes the
		// copier is waiting in Next with both buffers free: it must stop
		// at the batch in hand rather than take a free buffer for it
		// (select picks at random) and ask for more.
		for range 20 {
			src := &countingSource{inner: newPipeline(t, dir, 0), delay: 3 * time.Millisecond}
			d := newFakeDevice(t, 2, 0)
			f, err := newFeed(src, d, Options{}, d.checkRelease)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := consume(t, f, d, 4, 0); err != nil {
				t.Fatal(err)
			}
			before := src.calls.Load()
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			// At most one: the copier may have started its next Next
			// between the last step and Close.
			if extra := src.calls.Load() - before; extra > 1 {
				t.Fatalf("Close let the copier take %d more batches", extra)
			}
			src.inner.Close()
		}
	})
	t.Run("misuse", func(t *testing.T) {
		pl := newPipeline(t, dir, 1)
		defer pl.Close()
		d := newFakeDevice(t, 2, 0)
		f, err := New(pl, d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b0, err := f.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Free(b0); err == nil {
			t.Error("Free before Begin accepted")
		}
		if err := f.End(b0); err == nil {
			t.Error("End before Free accepted")
		}
		b1, err := f.Next()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Next(); err == nil || !strings.Contains(err.Error(), "open") {
			t.Errorf("a third open batch with two buffers: %v", err)
		}
		if err := f.Begin(b0); err == nil {
			t.Error("Begin of an older batch after a newer one was delivered accepted")
		}
		_ = b1
	})
	t.Run("buffer count", func(t *testing.T) {
		for _, n := range []int{0, 5} {
			if _, err := New(nil, &fakeDevice{bufs: make([][]byte, n)}, Options{}); err == nil {
				t.Errorf("%d buffers accepted", n)
			}
		}
	})
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		l        Layout
		mem      int
		misalign bool
		err      string
	}{
		{"alexnet batch", Layout{128, 224}, Layout{128, 224}.Bytes(), false, ""},
		{"ten-crop eval", Layout{1280, 224}, Layout{1280, 224}.Bytes(), false, ""},
		{"too small", Layout{8, 12}, Layout{8, 12}.Bytes() - 1, false, "needs"},
		{"misaligned", Layout{8, 12}, Layout{8, 12}.Bytes(), true, "aligned"},
		{"empty", Layout{0, 12}, 64, false, "positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := make([]byte, tc.mem+4)
			if tc.misalign {
				mem = mem[1:]
			} else {
				mem = mem[:tc.mem]
			}
			s, err := tc.l.Slot(mem)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := tc.l
			if l.Bytes() != 16*l.Crops+l.Crops*l.Crop*l.Crop*3 || l.CopyBytes(l.Crops) != l.Bytes() {
				t.Errorf("sizes: %d, %d", l.Bytes(), l.CopyBytes(l.Crops))
			}
			s.Labels[l.Crops-1] = 0x01020304
			s.Offsets[l.Crops-1] = [3]float32{1, 2, 3}
			s.Pixels[len(s.Pixels)-1] = 0xee
			if mem[l.OffsetsAt()-4] != 0x04 || mem[l.PixelsAt()-4] != 0x00 || mem[l.PixelsAt()-1] != 0x40 || mem[l.Bytes()-1] != 0xee {
				t.Error("slot views do not sit where the layout says")
			}
			block, err := l.Block(s)
			if err != nil || &block[0] != &mem[0] || len(block) != l.Bytes() {
				t.Errorf("Block: %v", err)
			}
			if _, err := l.Block(pipeline.NewSlot(l.Crops, 1, l.Crop)); err == nil {
				t.Error("Block accepted a slot not made by Layout.Slot")
			}
			db := DeviceBatch{Base: 1 << 20, Layout: l, N: 3}
			if db.Labels() != 1<<20 || int(db.Offsets()-db.Labels()) != l.OffsetsAt() || int(db.Pixels()-db.Labels()) != l.PixelsAt() {
				t.Errorf("device addresses %#x %#x %#x", db.Labels(), db.Offsets(), db.Pixels())
			}
		})
	}
}

func TestStepTiming(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		t         StepTiming
		wait, tot time.Duration
		frac      float64
	}{
		{StepTiming{PrevEnd: 10 * ms, DataReady: 10 * ms, End: 20 * ms}, 0, 10 * ms, 0},
		{StepTiming{PrevEnd: 10 * ms, DataReady: 12 * ms, End: 20 * ms}, 2 * ms, 10 * ms, 0.2},
		{StepTiming{PrevEnd: 10 * ms, DataReady: 9 * ms, End: 20 * ms}, 0, 10 * ms, 0}, // clock noise never goes negative
		{StepTiming{}, 0, 0, 0},
	} {
		if tc.t.Wait() != tc.wait || tc.t.Total() != tc.tot || tc.t.WaitFraction() != tc.frac {
			t.Errorf("%+v: wait %v total %v frac %v; want %v %v %v", tc.t, tc.t.Wait(), tc.t.Total(), tc.t.WaitFraction(), tc.wait, tc.tot, tc.frac)
		}
	}
	if (Stats{}).WaitFraction() != 0 || (Stats{Wait: ms, Total: 4 * ms}).WaitFraction() != 0.25 {
		t.Error("Stats.WaitFraction")
	}
	// The wait's parts: before the copy began, during it, after it landed.
	for _, tc := range []struct {
		name            string
		t               StepTiming
		input, cp, host time.Duration
	}{
		{"no wait", StepTiming{PrevEnd: 10 * ms, DataReady: 10 * ms, CopyStart: 2 * ms, CopyEnd: 4 * ms}, 0, 0, 0},
		{"copy late to start", StepTiming{PrevEnd: 10 * ms, DataReady: 16 * ms, CopyStart: 13 * ms, CopyEnd: 16 * ms}, 3 * ms, 3 * ms, 0},
		{"copy running at the step's end", StepTiming{PrevEnd: 10 * ms, DataReady: 12 * ms, CopyStart: 9 * ms, CopyEnd: 12 * ms}, 0, 2 * ms, 0},
		{"loop late, batch there", StepTiming{PrevEnd: 10 * ms, DataReady: 13 * ms, CopyStart: 5 * ms, CopyEnd: 7 * ms}, 0, 0, 3 * ms},
		{"all three", StepTiming{PrevEnd: 10 * ms, DataReady: 20 * ms, CopyStart: 12 * ms, CopyEnd: 15 * ms}, 2 * ms, 3 * ms, 5 * ms},
		{"clock noise", StepTiming{PrevEnd: 10 * ms, DataReady: 9 * ms, CopyStart: 12 * ms, CopyEnd: 15 * ms}, 0, 0, 0},
	} {
		in, cp, host := tc.t.WaitParts()
		if in != tc.input || cp != tc.cp || host != tc.host || in+cp+host != tc.t.Wait() {
			t.Errorf("%s: input %v copy %v host %v (wait %v); want %v %v %v", tc.name, in, cp, host, tc.t.Wait(), tc.input, tc.cp, tc.host)
		}
	}
}
