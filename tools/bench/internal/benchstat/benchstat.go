// Package benchstat holds what the bench commands share in how they
// measure: the median they report and the process's CPU time, which on a
// shared machine is a steadier yardstick than the wall clock.
package benchstat

import (
	"slices"
	"syscall"
	"time"
)

// Median is the middle value of v (the mean of the middle two when even),
// 0 for none.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// CPUTime is the process's user + system CPU time so far, every thread
// included; 0 where getrusage fails.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
