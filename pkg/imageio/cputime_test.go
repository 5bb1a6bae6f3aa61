package imageio

import (
	"runtime"
	"testing"
	"time"
)

// cpuTimer reports the benchmark's on-CPU time per op as "cpu-ns/op".
// The development machine's two cores are shared, so wall time per op
// swings with other people's work; the thread's own CPU time does not.
type cpuTimer struct{ start time.Duration }

func startCPU(b *testing.B) *cpuTimer {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &cpuTimer{start: threadCPU()}
}

func (c *cpuTimer) report(b *testing.B) {
	if b.N > 0 && c.start > 0 {
		b.ReportMetric(float64(threadCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}
