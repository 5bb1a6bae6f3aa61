package blas

import (
	"math/rand/v2"
	"time"
)

// MeasureSgemmGFLOPS runs C = A·B (m×k times k×n, no transposes) on random
// data for about d and returns the achieved rate, counting 2·m·n·k
// floating-point operations per call. One untimed call first lets OpenBLAS
// start its threads.
func MeasureSgemmGFLOPS(m, n, k int, d time.Duration) float64 {
	r := rand.New(rand.NewPCG(1, 2))
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	c := make([]float32, m*n)
	for i := range a {
		a[i] = r.Float32() - 0.5
	}
	for i := range b {
		b[i] = r.Float32() - 0.5
	}
	Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	calls := 0
	start := time.Now()
	var elapsed time.Duration
	for elapsed < d || calls == 0 {
		Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		calls++
		elapsed = time.Since(start)
	}
	return 2 * float64(m) * float64(n) * float64(k) * float64(calls) / elapsed.Seconds() / 1e9
}
