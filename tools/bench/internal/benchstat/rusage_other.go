//go:build !unix

package benchstat

import (
	"os"
	"time"
)

// CPUTime is 0 where there is no getrusage: the benches' per-CPU-second
// figures are Unix's (Linux's, where they pin cores).
func CPUTime() time.Duration { return 0 }

// PeakRSSMiB is 0 where there is no rusage.
func PeakRSSMiB(*os.ProcessState) float64 { return 0 }

// SelfPeakRSSMiB is 0 where there is no getrusage.
func SelfPeakRSSMiB() float64 { return 0 }
