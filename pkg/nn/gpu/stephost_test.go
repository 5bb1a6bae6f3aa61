package gpu

import (
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
)

// nullEngine runs nothing: it hands out addresses that are never touched
// and counts what the Net asks of the device. With it, a step's host side
// (the Go that queues the work, without the library crossings) is
// measured alone, and the calls that would stall the queue are seen.
type nullEngine struct {
	next  cuda.DevicePtr
	calls map[string]int
	noDx  []cuda.ConvShape // convolutions whose backward-data will not run
}

func newNullEngine() *nullEngine {
	return &nullEngine{next: 1 << 20, calls: map[string]int{}}
}

func (z *nullEngine) count(what string) { z.calls[what]++ }

func (z *nullEngine) launch(name string, grid, block [3]uint32, args ...any) error {
	z.count("launch")
	return nil
}

func (z *nullEngine) alloc(bytes int) (cuda.DevicePtr, error) {
	z.count("alloc")
	p := z.next
	z.next += cuda.DevicePtr((bytes + 255) &^ 255)
	return p, nil
}

func (z *nullEngine) upload(dst cuda.DevicePtr, src []byte) error   { z.count("upload"); return nil }
func (z *nullEngine) download(dst []byte, src cuda.DevicePtr) error { z.count("download"); return nil }
func (z *nullEngine) copyDtoD(dst, src cuda.DevicePtr, bytes int) error {
	z.count("copy")
	return nil
}
func (z *nullEngine) zero(dst cuda.DevicePtr, bytes int) error { z.count("zero"); return nil }
func (z *nullEngine) gemm(transA, transB bool, m, n, k int, a cuda.DevicePtr, lda int, b cuda.DevicePtr, ldb int, beta float32, c cuda.DevicePtr, ldc int) error {
	z.count("gemm")
	return nil
}

type nullLayer struct {
	z    *nullEngine
	kind string
}

func (l nullLayer) forward(x, y cuda.DevicePtr) error {
	l.z.count(l.kind)
	return nil
}
func (l nullLayer) backward(y, dy, x, dx cuda.DevicePtr) error {
	l.z.count(l.kind)
	return nil
}
func (l nullLayer) backwardData(w, dy, dx cuda.DevicePtr) error {
	l.z.count("conv backward-data")
	return nil
}
func (l nullLayer) backwardFilter(x, dy, dw cuda.DevicePtr) error {
	l.z.count("conv backward-filter")
	return nil
}
func (l nullLayer) backwardBias(dy, db cuda.DevicePtr) error {
	l.z.count("conv backward-bias")
	return nil
}

type nullConv struct{ nullLayer }

func (c nullConv) forward(x, w, y cuda.DevicePtr) error {
	c.z.count("conv forward")
	return nil
}

func (z *nullEngine) conv(s cuda.ConvShape, needDx bool) (convRun, error) {
	if !needDx {
		z.noDx = append(z.noDx, s)
	}
	return nullConv{nullLayer{z, "conv"}}, s.Validate()
}
func (z *nullEngine) lrn(in shape4, p alexnet.LRNParams) (lrnRun, error) {
	return nullLayer{z, "lrn"}, nil
}
func (z *nullEngine) pool(in, out shape4, k, stride, pad int) (poolRun, error) {
	return nullLayer{z, "pool"}, nil
}
func (z *nullEngine) prepare() error                         { return nil }
func (z *nullEngine) newTimer(points int) (stepTimer, error) { return newWallTimer(points), nil }
func (z *nullEngine) sync() error                            { z.count("sync"); return nil }
func (z *nullEngine) describe() string                       { return "null engine" }
func (z *nullEngine) close() error                           { return nil }

// newNullNet builds spec at batch on a nullEngine and returns the Net, the
// engine and a device batch in the Net's input layout.
func newNullNet(t testing.TB, variant string, batch int) (*Net, *nullEngine, feed.DeviceBatch) {
	t.Helper()
	spec, err := alexnet.Build(variant, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	z := newNullEngine()
	net, err := newNet(z, spec, batch, nil, Options{Mean: testMean, Std: testStd})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := z.alloc(net.InputLayout().Bytes())
	return net, z, feed.DeviceBatch{Base: base, Layout: net.InputLayout(), N: batch}
}

// queueStep is StepLoaded's GPU path without the result ring (which only
// the CUDA engine has): load, forward, loss, backward, update.
func queueStep(n *Net, b feed.DeviceBatch) error {
	if err := n.Load(b); err != nil {
		return err
	}
	if err := n.queueTrain(); err != nil {
		return err
	}
	return n.Update(0.01, 0.9, 5e-4)
}

// TestStepQueuesWithoutHostStalls: a training step is queued work only.
// An allocation, an upload, a download or a synchronise inside it would
// stop the host from running a step ahead of the GPU (the feed's overlap
// and the result ring both rely on that), and would not show on the CPU
// any other way. The counts also pin how many library calls a step
// makes, each a purego crossing (BenchmarkGPUEnter prices one).
func TestStepQueuesWithoutHostStalls(t *testing.T) {
	for _, tc := range []struct {
		variant   string
		convCalls int // cuDNN convolution passes
	}{
		// 5 convs: 5 forward, 5 bias, 5 filter, 4 data (conv1's input
		// needs none).
		{"alexnet", 19},
		{"alexnet-owt", 19},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			net, z, b := newNullNet(t, tc.variant, 128)
			defer net.Close()
			// Only conv1, on the image, is built without backward-data:
			// the CUDA engine plans it without that pass's search.
			if len(z.noDx) != 1 || z.noDx[0].C != 3 {
				t.Errorf("convolutions built without backward-data: %v, want conv1's alone", z.noDx)
			}
			clear(z.calls)
			for range 3 {
				if err := queueStep(net, b); err != nil {
					t.Fatal(err)
				}
			}
			for _, stall := range []string{"alloc", "upload", "download", "sync", "zero"} {
				if c := z.calls[stall]; c > 0 {
					t.Errorf("3 steps made %d %s call(s)", c, stall)
				}
			}
			conv := 0
			total := 0
			for k, c := range z.calls {
				if strings.HasPrefix(k, "conv") {
					conv += c
				}
				total += c
			}
			if conv != 3*tc.convCalls {
				t.Errorf("3 steps made %d convolution calls, want %d (%v)", conv, 3*tc.convCalls, z.calls)
			}
			t.Logf("%s: %d library calls and kernel launches per step: %v", tc.variant, total/3, perStep(z.calls, 3))
		})
	}
}

func perStep(calls map[string]int, steps int) map[string]int {
	out := make(map[string]int, len(calls))
	for k, c := range calls {
		out[k] = c / steps
	}
	return out
}

// BenchmarkStepHost is the Go side of queueing one AlexNet training step
// at batch 128, with no device behind it: what a step costs the host on
// top of its library crossings. Against a GPU step of a few ms it should
// be tens of µs; its allocations are the launches' boxed arguments.
func BenchmarkStepHost(b *testing.B) {
	for _, variant := range []string{"alexnet", "alexnet-owt"} {
		b.Run(variant, func(b *testing.B) {
			net, z, db := newNullNet(b, variant, 128)
			defer net.Close()
			clear(z.calls)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := queueStep(net, db); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			total := 0
			for _, c := range z.calls {
				total += c
			}
			b.ReportMetric(float64(total)/float64(b.N), "calls/step")
		})
	}
}
