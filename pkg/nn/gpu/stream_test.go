package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
)

// syncOnly hides Backend's Streamer methods, so trainer.Train takes its
// synchronous path.
type syncOnly struct{ trainer.Backend }

// TestBackendStreamsOnHost runs trainer.Train on the host engine twice,
// through the Backend's stream (pkg/feed, one step queued ahead, with
// checkpoints every 4 steps and at epoch ends) and through its plain Step:
// the checkpoints and metrics must be identical, byte for byte.
func TestBackendStreamsOnHost(t *testing.T) {
	em := needEmulator(t)
	dir := t.TempDir()
	writeTestShards(t, dir, 24, 24, 10)
	run := func(streamed bool) (string, string) {
		out := t.TempDir()
		cfg := trainer.Config{Shards: dir, Model: "small", Epochs: 2, Batch: 4, Crop: 20, LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4,
			Schedule: "step:1", Out: out, Seed: 2, LogEvery: 2, CkptEvery: 4, EvalBatch: 4, Workers: 2}
		cfg.NewBackend = func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (trainer.Backend, error) {
			eng := newHostEngine(em)
			n, err := newNet(eng, spec, batch, params, Options{Seed: seed, Mean: mean, Std: std})
			if err != nil {
				return nil, err
			}
			b := &Backend{net: n,
				feedDevice: func(l feed.Layout) (feed.Device, func() error, error) {
					return &hostFeedDevice{mem: eng.mem, l: l, bufs: []cuda.DevicePtr{eng.mem.alloc(l.Bytes()), eng.mem.alloc(l.Bytes())}},
						func() error { return nil }, nil
				},
				slots: func(n int, l feed.Layout) ([]*pipeline.Slot, func() error, error) {
					var slots []*pipeline.Slot
					for range n {
						s, err := l.Slot(make([]byte, l.Bytes()))
						if err != nil {
							return nil, nil, err
						}
						slots = append(slots, s)
					}
					return slots, func() error { return nil }, nil
				}}
			if !streamed {
				return syncOnly{b}, nil
			}
			return b, nil
		}
		var log bytes.Buffer
		res, err := trainer.Train(context.Background(), cfg, &log)
		if err != nil {
			t.Fatalf("streamed %v: %v\n%s", streamed, err, log.String())
		}
		if res.Steps != 12 {
			t.Fatalf("streamed %v: %d steps, want 12", streamed, res.Steps)
		}
		if got := strings.Contains(log.String(), "one step ahead"); got != streamed {
			t.Fatalf("streamed %v, but the log says otherwise:\n%s", streamed, log.String())
		}
		ck, err := os.ReadFile(filepath.Join(out, trainer.CheckpointFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(ck), metricsWithoutTimes(t, out)
	}
	ckSync, mSync := run(false)
	ckStream, mStream := run(true)
	if ckSync != ckStream {
		t.Error("the streamed run's checkpoint differs from the synchronous run's")
	}
	if mSync != mStream {
		t.Errorf("metrics differ:\nsync:\n%s\nstreamed:\n%s", mSync, mStream)
	}
}

// metricsWithoutTimes is metrics.jsonl with the timing fields zeroed.
func metricsWithoutTimes(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var m trainer.Metric
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		m.ImgPerS, m.DataWait, m.Seconds = 0, 0, 0
		line, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(append(line, '\n'))
	}
	return out.String()
}

// TestStreamDataWaitSkipsIdle: the data wait leaves out step 0 (start-up)
// and the step after each Idle (the loop's evaluation or checkpoint), and
// counts every other step's wait and total.
func TestStreamDataWaitSkipsIdle(t *testing.T) {
	s := &stream{skip: map[int64]bool{}}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	step := func(seq int64, wait, total int) {
		// Timings arrive a few steps late, as from the device.
		s.timing(feed.StepTiming{Seq: seq, PrevEnd: ms(100 * int(seq)), DataReady: ms(100*int(seq) + wait), End: ms(100*int(seq) + total)})
	}
	s.queued = 3
	s.Idle() // after step 2: step 3 follows an evaluation
	for seq := range int64(5) {
		wait := 1
		if seq == 0 || seq == 3 {
			wait = 50
		}
		step(seq, wait, 60)
	}
	w, tot := s.DataWait()
	if w != ms(3) || tot != ms(180) {
		t.Fatalf("data wait %v of %v, want 3ms of 180ms (steps 1, 2 and 4)", w, tot)
	}
	if len(s.skip) != 0 {
		t.Errorf("skips left over: %v", s.skip)
	}
}

// A step's result waited for after its Net closed (its pinned buffer
// freed) is an error, not a panic.
func TestPendingWaitAfterClose(t *testing.T) {
	p := &Pending{ring: &resultRing{}} // what close leaves: no host buffer
	if _, _, err := p.Wait(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Wait after close: %v", err)
	}
}
