package benchstat

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %g, want %g", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median reordered its input: %v", tc.in)
			}
		}
	}
}

func TestCPUTimeAdvances(t *testing.T) {
	c0 := CPUTime()
	x := 0.0
	for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
		x += 1e-9
	}
	if c1 := CPUTime(); c1 <= c0 || x == 0 {
		t.Errorf("CPU time %v then %v across 20 ms of spinning", c0, c1)
	}
}
