//go:build unix

package benchstat

import (
	"os"
	"runtime"
	"syscall"
	"time"
)

// CPUTime is the process's user + system CPU time so far, every thread
// included; 0 where getrusage fails.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSSMiB is a finished child's peak resident set in MiB, from its
// rusage; 0 for a process that never started or a system without rusage.
// On Linux a child's figure is never below its parent's peak at the
// child's exec (the kernel carries it over), so SelfPeakRSSMiB is the
// floor to report beside it.
func PeakRSSMiB(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return maxrssMiB(ru.Maxrss)
	}
	return 0
}

// SelfPeakRSSMiB is this process's own peak resident set in MiB.
func SelfPeakRSSMiB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return maxrssMiB(ru.Maxrss)
}

// maxrssMiB converts rusage's Maxrss: KiB on Linux, bytes on macOS.
func maxrssMiB(v int64) float64 {
	if runtime.GOOS == "darwin" {
		return float64(v) / (1 << 20)
	}
	return float64(v) / 1024
}
