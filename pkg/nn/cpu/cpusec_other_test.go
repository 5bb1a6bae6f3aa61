//go:build !unix

package cpu

// cpuSeconds is 0 without getrusage: the per-CPU-second figures are Unix's.
func cpuSeconds() float64 { return 0 }
