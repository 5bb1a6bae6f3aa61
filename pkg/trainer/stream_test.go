package trainer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// lagBackend is a Streamer over the CPU backend that behaves as a GPU's
// queue does: a queued step runs only when something needs it (its own
// result, a later step's, or the parameters through Tensors or Logits).
// A loop that queued a step before a boundary's bookkeeping would so
// evaluate and checkpoint parameters one update ahead, and differ from
// the synchronous loop.
type lagBackend struct {
	Backend
	t        *testing.T
	work     []func() // queued steps, not yet run, oldest first
	maxQueue int
	freed    bool
	// earlyReads counts reads of the parameters (checkpoint, evaluation)
	// made while a step was still queued: each is a loop running ahead
	// where it must not.
	earlyReads int
}

func lagFactory(t *testing.T, made **lagBackend) BackendFactory {
	return func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (Backend, error) {
		be, err := NewCPU(spec, batch, params, seed, mean, std)
		if err != nil {
			return nil, err
		}
		b := &lagBackend{Backend: be, t: t}
		if made != nil {
			*made = b
		}
		return b, nil
	}
}

func (b *lagBackend) runOne() {
	w := b.work[0]
	b.work = b.work[1:]
	w()
}

func (b *lagBackend) drain() {
	for len(b.work) > 0 {
		b.runOne()
	}
}

func (b *lagBackend) read() {
	if len(b.work) > 0 {
		b.earlyReads++
	}
	b.drain()
}

func (b *lagBackend) Tensors() ([]Tensor, error) { b.read(); return b.Backend.Tensors() }

func (b *lagBackend) Logits(s *pipeline.Slot) ([]float32, error) {
	b.read()
	return b.Backend.Logits(s)
}

func (b *lagBackend) Slots(n, batch, crop int) ([]*pipeline.Slot, func() error, error) {
	return pipeline.NewSlots(n, batch, 1, crop), func() error { b.freed = true; return nil }, nil
}

func (b *lagBackend) Stream(src feed.Source) (Stream, error) { return &lagStream{b: b, src: src}, nil }

type lagStream struct {
	b   *lagBackend
	src feed.Source
}

func (s *lagStream) Queue(lr, momentum, wd float32) (QueuedStep, error) {
	slot, err := s.src.Next()
	if err != nil {
		return QueuedStep{}, err
	}
	var loss float64
	var c1 int
	var serr error
	done := false
	s.b.work = append(s.b.work, func() {
		loss, c1, serr = s.b.Backend.Step(slot, lr, momentum, wd)
		slot.Release()
		done = true
	})
	s.b.maxQueue = max(s.b.maxQueue, len(s.b.work))
	return QueuedStep{Pos: slot.Pos, Resume: slot.Resume, Wait: func() (float64, int, error) {
		for !done {
			s.b.runOne()
		}
		return loss, c1, serr
	}}, nil
}

func (s *lagStream) DataWait() (time.Duration, time.Duration) {
	return time.Millisecond, 10 * time.Millisecond
}
func (s *lagStream) Close() error { return nil }
func (s *lagStream) Idle()        {}

// trainingRecord is what two runs must agree on: the metrics log without
// its timings.
func trainingRecord(t *testing.T, dir string) []Metric {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Metric
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metric
		if err := jsonUnmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		m.ImgPerS, m.DataWait, m.Seconds = 0, 0, 0
		out = append(out, m)
	}
	return out
}

// TestStreamedLoopMatchesSync runs the same training through the
// synchronous loop and through a Streamer that defers every step until it
// is needed: losses, evaluations, checkpoints (every epoch and every 3
// steps) and a --max-steps stop and resume must all come out the same,
// byte for byte.
func TestStreamedLoopMatchesSync(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40)

	sync := t.TempDir()
	cfg := smallConfig(shardDir, sync)
	cfg.CkptEvery = 3
	mustTrain(t, cfg)

	streamed := t.TempDir()
	cfg = smallConfig(shardDir, streamed)
	cfg.CkptEvery = 3
	var lag *lagBackend
	cfg.NewBackend = lagFactory(t, &lag)
	var log bytes.Buffer
	if _, err := Train(context.Background(), cfg, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "one step ahead") {
		t.Fatalf("the streamed path was not taken:\n%s", log.String())
	}
	if lag.maxQueue != 2 || !lag.freed || lag.earlyReads != 0 {
		t.Fatalf("at most %d steps were queued (want 2: one running ahead); slots freed %v; %d parameter reads with a later step queued",
			lag.maxQueue, lag.freed, lag.earlyReads)
	}
	compareRuns(t, sync, streamed)

	// Stopped at step 7 (mid-epoch, not a checkpoint step) and resumed.
	resumed := t.TempDir()
	cfg = smallConfig(shardDir, resumed)
	cfg.CkptEvery = 3
	cfg.NewBackend = lagFactory(t, nil)
	cfg.MaxSteps = 7
	if res, err := Train(context.Background(), cfg, io.Discard); err != nil || res.Steps != 7 || res.Stopped != "max-steps" {
		t.Fatalf("first leg: %+v %v", res, err)
	}
	cfg.MaxSteps, cfg.Resume = 0, true
	mustTrain(t, cfg)
	// The checkpoint keeps the sums toward the next log line and the
	// epoch's training figures, so even those match an uninterrupted run.
	compareRuns(t, sync, resumed)
}

func compareRuns(t *testing.T, want, got string) {
	t.Helper()
	a, _ := os.ReadFile(filepath.Join(want, CheckpointFile))
	b, _ := os.ReadFile(filepath.Join(got, CheckpointFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("final checkpoints differ")
	}
	ma, mb := trainingRecord(t, want), trainingRecord(t, got)
	if len(ma) != len(mb) {
		t.Fatalf("%d metrics vs %d", len(ma), len(mb))
	}
	for i := range ma {
		if ma[i] != mb[i] {
			t.Fatalf("metric %d: %+v, want %+v", i, mb[i], ma[i])
		}
	}
}

// deadDevice is a backend whose parameters cannot be read back.
type deadDevice struct{ Backend }

func (deadDevice) Tensors() ([]Tensor, error) { return nil, errors.New("device lost") }

// TestUnreadableParametersWriteNoCheckpoint: a backend that cannot read
// its parameters back stops the run with that error, and no checkpoint
// (an empty one would load as a model with no weights) is written.
func TestUnreadableParametersWriteNoCheckpoint(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.CkptEvery = 2
	cfg.NewBackend = func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (Backend, error) {
		be, err := NewCPU(spec, batch, params, seed, mean, std)
		return deadDevice{be}, err
	}
	_, err := Train(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "device lost") || !strings.Contains(err.Error(), "step 2") {
		t.Fatalf("want the device's error at step 2, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, CheckpointFile)); !os.IsNotExist(err) {
		t.Fatalf("a checkpoint was written: %v", err)
	}
}
