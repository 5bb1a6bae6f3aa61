package cpu

import (
	"runtime"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/blas"
)

// sgemmReference measures SGEMM at a conv3-like shape two ways: on all
// cores by wall clock, and on one thread per CPU-second. The second is the
// fair yardstick on a shared machine, where wall-clock rates depend on
// what else runs.
func sgemmReference() (wall, perCPU float64) {
	const m, n, k = 384, 1352, 2304
	blas.SetThreads(runtime.NumCPU())
	wall = blas.MeasureSgemmGFLOPS(m, n, k, time.Second)
	blas.SetThreads(1)
	c0 := cpuSeconds()
	t0 := time.Now()
	g := blas.MeasureSgemmGFLOPS(m, n, k, time.Second)
	perCPU = g * time.Since(t0).Seconds() / (cpuSeconds() - c0)
	return wall, perCPU
}

// benchTrainStep times TrainStep + Update. Besides img/s it reports the
// achieved rate (Spec.TrainFLOPs per image) by wall clock and per
// CPU-second, and each as a percentage of the SGEMM reference.
func benchTrainStep(b *testing.B, variant string, classes, batch int) {
	s, err := alexnet.Build(variant, classes, 0)
	if err != nil {
		b.Fatal(err)
	}
	n := mustNet(b, s, batch, nil, 1)
	x, labels := batchData(s, batch, 1)
	sgemmWall, sgemmCPU := sgemmReference()
	// Warm-up touches every buffer once, momentum included.
	if _, _, _, err := n.TrainStep(x, labels); err != nil {
		b.Fatal(err)
	}
	n.Update(0, 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuSeconds()
	for b.Loop() {
		if _, _, _, err := n.TrainStep(x, labels); err != nil {
			b.Fatal(err)
		}
		n.Update(0.01, 0.9, 0.0005)
	}
	cpu := cpuSeconds() - c0
	sec := b.Elapsed().Seconds()
	imgs := float64(b.N * batch)
	flops := imgs * float64(s.TrainFLOPs()) / 1e9
	b.ReportMetric(imgs/sec, "img/s")
	b.ReportMetric(flops/sec, "GFLOP/s")
	b.ReportMetric(100*flops/sec/sgemmWall, "%sgemm")
	b.ReportMetric(flops/cpu, "GFLOP/cpu-s")
	b.ReportMetric(100*flops/cpu/sgemmCPU, "%sgemm-cpu")
}

func BenchmarkTrainStepSmall(b *testing.B) { benchTrainStep(b, "small", 10, 128) }

func BenchmarkTrainStepSmallFC(b *testing.B) { benchTrainStep(b, "small-fc", 10, 128) }

func BenchmarkTrainStepAlexNet(b *testing.B) {
	if testing.Short() {
		b.Skip("a step takes seconds and 1.5 GB")
	}
	benchTrainStep(b, "alexnet", 1000, 32)
}

// BenchmarkPoolForward is max pooling 3/2 over small's pool1 input
// (batch 128 × 32 channels × 32×32) of post-convolution-like data.
func BenchmarkPoolForward(b *testing.B) {
	const n, c, h, w = 128, 32, 32, 32
	l := newPoolLayer(n, c, h, w, 3, 2, 0)
	x, _ := batchData(alexnet.Spec{Input: [3]int{c, h, w}, Classes: 1}, n, 1)
	b.SetBytes(int64(len(x) * 4))
	b.ReportAllocs()
	for b.Loop() {
		l.forward(x)
	}
}
