package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// addTo gives the Go loop's sums bit for bit, at every length and
// alignment, and leaves d past len(s) alone.
func TestAddTo(t *testing.T) {
	for _, avx := range []bool{true, false} {
		was := useAVX2
		useAVX2 = avx && was
		testAddTo(t)
		useAVX2 = was
	}
}

func testAddTo(t *testing.T) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 31, 32, 33, 63, 64, 100, 1024, 1029} {
		for _, off := range []int{0, 1, 3} {
			s := make([]float32, n+off)
			d := make([]float32, n+off+5)
			for i := range s {
				s[i] = float32(rng.NormFloat64())
			}
			for i := range d {
				d[i] = float32(rng.NormFloat64() * 1e3)
			}
			want := append([]float32(nil), d...)
			for i := range n {
				want[off+i] += s[off+i]
			}
			got := append([]float32(nil), d...)
			addTo(got[off:], s[off:off+n])
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n %d, offset %d: element %d is %v, want %v", n, off, i, got[i], want[i])
				}
			}
		}
	}
}

func BenchmarkAddTo(b *testing.B) {
	d, s := make([]float32, 1024), make([]float32, 1024)
	b.SetBytes(1024 * 4 * 3)
	b.ReportAllocs()
	for b.Loop() {
		addTo(d[:1020], s[:1020])
	}
}
