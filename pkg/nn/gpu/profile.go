package gpu

import (
	"fmt"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
)

// LayerTime is one part of a training step, timed on the device's clock.
// A throughput ratio against PyTorch says whether we are slower; this says
// where, layer by layer, with PyTorch's module times beside it in the GPU
// check's table.
type LayerTime struct {
	Layer string `json:"layer"` // a layer's name, or "input", "loss", "update"
	Kind  string `json:"kind"`  // the layer's alexnet.Kind; "input", "loss" or "update" otherwise
	Pass  string `json:"pass"`  // "forward" or "backward"; "" for input, loss and update
	// ReLU is set where the layer's ReLU is fused into it (conv and fc),
	// so its time includes what PyTorch spends in a separate module.
	ReLU bool    `json:"relu,omitempty"`
	Ms   float64 `json:"ms"` // mean per step
}

// stepTimer stamps points in the engine's queue and, once the queued work
// has run, gives the time between them.
type stepTimer interface {
	stamp(i int) error                   // point i, after everything queued so far
	elapsedMs(i, j int) (float64, error) // from point i to point j; after sync
	close() error
}

// profiler names the interval that ends at each point of the step being
// profiled: labels[i-1] ends at point i, point 0 opening the step.
type profiler struct {
	t      stepTimer
	points int
	labels []LayerTime
}

// mark closes the interval since the last point, naming it; without a
// profile running it does nothing, so the plain step pays one nil check.
func (n *Net) mark(layer, kind, pass string, relu bool) error {
	p := n.prof
	if p == nil {
		return nil
	}
	if len(p.labels)+1 >= p.points {
		return fmt.Errorf("gpu: profile: more than the %d timing points planned", p.points)
	}
	p.labels = append(p.labels, LayerTime{Layer: layer, Kind: kind, Pass: pass, ReLU: relu})
	return p.t.stamp(len(p.labels))
}

// Profile runs steps training steps on a batch already on the device
// (Stage), waiting for each, with a timing point after the input's
// normalisation, after every layer of the forward pass, after the loss,
// after every layer of the backward pass and after the SGD update. It
// returns each part's mean time in queue order. The steps are real: they
// update the weights and advance Step, as StepLoaded's would.
//
// Profiled steps are a little slower than queued ones (each waits, and
// every point is an event), so the parts add up to more than a bench's
// step time; their shares are what to read.
func (n *Net) Profile(db feed.DeviceBatch, steps int, lr, momentum, weightDecay float32) ([]LayerTime, error) {
	if steps < 1 {
		return nil, fmt.Errorf("gpu: Profile of %d steps", steps)
	}
	if n.prof != nil {
		return nil, fmt.Errorf("gpu: Profile is already running")
	}
	points := 2*len(n.nodes) + 4 // start, input, each forward, loss, each backward, update
	t, err := n.eng.newTimer(points)
	if err != nil {
		return nil, err
	}
	n.prof = &profiler{t: t, points: points}
	defer func() {
		n.prof = nil
		t.close()
	}()
	var sums []LayerTime
	for s := range steps {
		n.prof.labels = n.prof.labels[:0]
		if err := t.stamp(0); err != nil {
			return nil, err
		}
		if err := n.Load(db); err != nil {
			return nil, err
		}
		if err := n.mark("input", "input", "", false); err != nil {
			return nil, err
		}
		if err := n.queueTrain(); err != nil {
			return nil, err
		}
		if err := n.Update(lr, momentum, weightDecay); err != nil {
			return nil, err
		}
		if err := n.mark("update", "update", "", false); err != nil {
			return nil, err
		}
		if err := n.eng.sync(); err != nil {
			return nil, err
		}
		if s == 0 {
			sums = append([]LayerTime(nil), n.prof.labels...)
		} else if len(n.prof.labels) != len(sums) {
			return nil, fmt.Errorf("gpu: profile: step %d had %d parts, step 0 had %d", s, len(n.prof.labels), len(sums))
		}
		for i := range sums {
			ms, err := t.elapsedMs(i, i+1)
			if err != nil {
				return nil, err
			}
			sums[i].Ms += ms
		}
	}
	for i := range sums {
		sums[i].Ms /= float64(steps)
	}
	return sums, nil
}

// cudaTimer stamps with timing events on the engine's stream.
type cudaTimer struct {
	e  *cudaEngine
	ev []*cuda.Event
}

func (e *cudaEngine) newTimer(points int) (stepTimer, error) {
	t := &cudaTimer{e: e}
	for range points {
		ev, err := e.dev.NewEvent(true)
		if err != nil {
			t.close()
			return nil, err
		}
		t.ev = append(t.ev, ev)
	}
	return t, nil
}

func (t *cudaTimer) stamp(i int) error { return t.ev[i].Record(t.e.stream) }

func (t *cudaTimer) elapsedMs(i, j int) (float64, error) {
	ms, err := cuda.ElapsedMs(t.ev[i], t.ev[j])
	return float64(ms), err
}

func (t *cudaTimer) close() error {
	var first error
	for _, ev := range t.ev {
		if err := ev.Destroy(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
