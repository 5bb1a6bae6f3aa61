package stats

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// randomPixels returns n interleaved RGB pixels with channel-specific
// ranges and a shared component, so that the covariance is non-trivial.
func randomPixels(seed uint64, n int) []uint8 {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := make([]uint8, 3*n)
	for i := 0; i < n; i++ {
		base := rng.IntN(200)
		p[3*i] = uint8(base + rng.IntN(56))
		p[3*i+1] = uint8(base/2 + rng.IntN(100))
		p[3*i+2] = uint8(255 - base - rng.IntN(56))
	}
	return p
}

// reference is the simple two-pass float64 computation that Add and Stats
// must agree with.
func reference(p []uint8) (mean [3]float64, cov [3][3]float64) {
	n := float64(len(p) / 3)
	for i := 0; i < len(p); i += 3 {
		for c := range 3 {
			mean[c] += float64(p[i+c])
		}
	}
	for c := range 3 {
		mean[c] /= n
	}
	for i := 0; i < len(p); i += 3 {
		for x := range 3 {
			for y := range 3 {
				cov[x][y] += (float64(p[i+x]) - mean[x]) * (float64(p[i+y]) - mean[y])
			}
		}
	}
	for x := range 3 {
		for y := range 3 {
			cov[x][y] /= n
		}
	}
	return mean, cov
}

// referenceSums is the per-pixel integer loop that the packed loop in
// addBlock replaces.
func referenceSums(p []uint8) Accumulator {
	var a Accumulator
	for i := 0; i+2 < len(p); i += 3 {
		r, g, b := uint64(p[i]), uint64(p[i+1]), uint64(p[i+2])
		a.n++
		a.s[0] += r
		a.s[1] += g
		a.s[2] += b
		a.sq[0] += r * r
		a.sq[1] += g * g
		a.sq[2] += b * b
		a.rg += r * g
		a.rb += r * b
		a.gb += g * b
	}
	return a
}

func statsOf(t *testing.T, p []uint8) Stats {
	t.Helper()
	var a Accumulator
	a.Add(p)
	st, err := a.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func TestAddMatchesPerPixelSums(t *testing.T) {
	for _, tc := range []struct {
		name string
		pix  []uint8
	}{
		{"empty", nil},
		{"one pixel", []uint8{1, 2, 3}},
		{"all 255, crosses a block", fill(255, 3*(blockPixels+7))},
		{"tail of each length", randomPixels(1, 13)},
		{"random 3 blocks", randomPixels(2, 3*blockPixels+5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Accumulator
			a.Add(tc.pix)
			if want := referenceSums(tc.pix); a != want {
				t.Fatalf("sums differ:\n got %+v\nwant %+v", a, want)
			}
		})
	}
}

func fill(v uint8, n int) []uint8 {
	p := make([]uint8, n)
	for i := range p {
		p[i] = v
	}
	return p
}

func TestStatsMatchReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		pix  []uint8
	}{
		{"random 1k", randomPixels(3, 1000)},
		{"random 200k", randomPixels(4, 200_000)},
		{"near-constant", append(fill(200, 3*10_000), 201, 199, 200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := statsOf(t, tc.pix)
			mean, cov := reference(tc.pix)
			for i := range 3 {
				if !close(st.Mean[i], mean[i], 1e-12) {
					t.Errorf("mean[%d] = %v, reference %v", i, st.Mean[i], mean[i])
				}
				if !close(st.Std[i], math.Sqrt(cov[i][i]), 1e-9) {
					t.Errorf("std[%d] = %v, reference %v", i, st.Std[i], math.Sqrt(cov[i][i]))
				}
				for j := range 3 {
					if !close(st.Cov[i][j], cov[i][j], 1e-9) {
						t.Errorf("cov[%d][%d] = %v, reference %v", i, j, st.Cov[i][j], cov[i][j])
					}
				}
			}
			checkEigen(t, st)
		})
	}
}

func close(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(1, math.Abs(want))
}

// checkEigen verifies Cov·v = λv, orthonormal columns, descending
// eigenvalues and the sign convention.
func checkEigen(t *testing.T, st Stats) {
	t.Helper()
	scale := math.Max(1, st.EigVal[0])
	for j := range 3 {
		if j > 0 && st.EigVal[j] > st.EigVal[j-1] {
			t.Errorf("eigenvalues not descending: %v", st.EigVal)
		}
		if st.EigVal[j] < 0 {
			t.Errorf("negative eigenvalue %v", st.EigVal[j])
		}
		big := 0
		for i := range 3 {
			var cv float64
			for k := range 3 {
				cv += st.Cov[i][k] * st.EigVec[k][j]
			}
			if d := math.Abs(cv - st.EigVal[j]*st.EigVec[i][j]); d > 1e-9*scale {
				t.Errorf("(Cov·v%d)[%d] = %v, λv = %v", j, i, cv, st.EigVal[j]*st.EigVec[i][j])
			}
			if math.Abs(st.EigVec[i][j]) > math.Abs(st.EigVec[big][j]) {
				big = i
			}
		}
		if st.EigVec[big][j] <= 0 {
			t.Errorf("column %d's largest component is not positive: %v", j, col(st.EigVec, j))
		}
		for k := range 3 {
			var dot float64
			for i := range 3 {
				dot += st.EigVec[i][j] * st.EigVec[i][k]
			}
			want := 0.0
			if j == k {
				want = 1
			}
			if math.Abs(dot-want) > 1e-12 {
				t.Errorf("v%d·v%d = %v, want %v", j, k, dot, want)
			}
		}
	}
}

func col(m [3][3]float64, j int) [3]float64 { return [3]float64{m[0][j], m[1][j], m[2][j]} }

func TestMergeIsOrderIndependent(t *testing.T) {
	const px = 50_000
	pix := randomPixels(5, px)
	want := statsOf(t, pix)

	rng := rand.New(rand.NewPCG(6, 7))
	for trial := range 20 {
		// Shuffle pixels, cut into a random number of uneven parts, and
		// merge the parts in a random order, sometimes as a tree.
		perm := rng.Perm(px)
		shuf := make([]uint8, 0, len(pix))
		for _, i := range perm {
			shuf = append(shuf, pix[3*i:3*i+3]...)
		}
		parts := 1 + rng.IntN(16)
		cuts := []int{0, px}
		for range parts - 1 {
			cuts = append(cuts, rng.IntN(px+1))
		}
		sortInts(cuts)
		accs := make([]*Accumulator, len(cuts)-1)
		for i := range accs {
			accs[i] = new(Accumulator)
			// Feed each part in odd-sized calls to exercise the tails.
			p := shuf[3*cuts[i] : 3*cuts[i+1]]
			for len(p) > 0 {
				k := 3 * min(len(p)/3, 1+rng.IntN(5000))
				accs[i].Add(p[:k])
				p = p[k:]
			}
		}
		rng.Shuffle(len(accs), func(i, j int) { accs[i], accs[j] = accs[j], accs[i] })
		for len(accs) > 1 {
			i := rng.IntN(len(accs) - 1)
			accs[i].Merge(accs[i+1])
			accs = append(accs[:i+1], accs[i+2:]...)
		}
		got, err := accs[0].Stats()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d (%d parts): merged stats differ from one pass\n got %+v\nwant %+v", trial, parts, got, want)
		}
		if got.Pixels != px || accs[0].Count() != px {
			t.Fatalf("trial %d: count %d, want %d", trial, got.Pixels, px)
		}
	}
}

func sortInts(s []int) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestKnownCovariance(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  [3]int // integer direction, so pixels lie exactly on the line
		mid  [3]int
	}{
		{"grey axis", [3]int{1, 1, 1}, [3]int{128, 128, 128}},
		{"red only", [3]int{1, 0, 0}, [3]int{128, 50, 200}},
		{"opponent", [3]int{1, -2, 1}, [3]int{128, 128, 128}},
		{"negative leading", [3]int{-3, 1, 2}, [3]int{128, 128, 128}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Pixels at mid + k·dir for k = −K..K: the covariance is
			// σ²·d·dᵀ with σ² = K(K+1)/3, so the top eigenvector is d/|d|
			// with eigenvalue σ²|d|², and the others are 0.
			const k = 40
			var pix []uint8
			for s := -k; s <= k; s++ {
				for c := range 3 {
					pix = append(pix, uint8(tc.mid[c]+s*tc.dir[c]))
				}
			}
			st := statsOf(t, pix)
			var norm2 float64
			for c := range 3 {
				norm2 += float64(tc.dir[c] * tc.dir[c])
				if st.Mean[c] != float64(tc.mid[c]) {
					t.Errorf("mean[%d] = %v, want %d", c, st.Mean[c], tc.mid[c])
				}
			}
			wantVal := float64(k*(k+1)) / 3 * norm2
			if !close(st.EigVal[0], wantVal, 1e-12) {
				t.Errorf("λ0 = %v, want %v", st.EigVal[0], wantVal)
			}
			if st.EigVal[1] > 1e-9 || st.EigVal[2] > 1e-9 {
				t.Errorf("minor eigenvalues %v, want 0", st.EigVal[1:])
			}
			// The convention makes the largest component positive, so the
			// expected vector is ±d/|d| accordingly.
			sign, big := 1.0, 0
			for c := range 3 {
				if abs(tc.dir[c]) > abs(tc.dir[big]) {
					big = c
				}
			}
			if tc.dir[big] < 0 {
				sign = -1
			}
			for c := range 3 {
				want := sign * float64(tc.dir[c]) / math.Sqrt(norm2)
				if math.Abs(st.EigVec[c][0]-want) > 1e-12 {
					t.Errorf("eigvec[%d][0] = %v, want %v", c, st.EigVec[c][0], want)
				}
			}
			checkEigen(t, st)
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestErrors(t *testing.T) {
	var a Accumulator
	if _, err := a.Stats(); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: err = %v, want ErrEmpty", err)
	}
	a.Add([]uint8{1, 2, 3, 4})
	if _, err := a.Stats(); err == nil || !strings.Contains(err.Error(), "multiple of 3") {
		t.Errorf("ragged Add: err = %v, want a length error", err)
	}
	var b Accumulator
	b.Add([]uint8{1, 2, 3})
	b.Merge(&a)
	if _, err := b.Stats(); err == nil {
		t.Error("merging a ragged accumulator should carry its error")
	}
	c := Accumulator{n: MaxPixels + 1}
	if _, err := c.Stats(); err == nil {
		t.Error("over MaxPixels: want an error")
	}
}

func TestSinglePixel(t *testing.T) {
	st := statsOf(t, []uint8{10, 20, 30})
	if st.Mean != [3]float64{10, 20, 30} || st.Std != [3]float64{} || st.EigVal != [3]float64{} {
		t.Fatalf("got %+v", st)
	}
	checkEigen(t, st)
}

func TestJSONLayout(t *testing.T) {
	st := Stats{Pixels: 2, EigVec: [3][3]float64{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"pixels":2`, `"pca_eigval":[0,0,0]`, `"pca_eigvec":[[1,2,3],[4,5,6],[7,8,9]]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil || back != st {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func BenchmarkAdd(b *testing.B) {
	pix := randomPixels(8, 256*256) // one ingest image
	b.SetBytes(int64(len(pix)))
	b.ReportAllocs()
	var a Accumulator
	for b.Loop() {
		a.Add(pix)
	}
}

// BenchmarkReferenceSums is the plain per-pixel loop, for comparison.
func BenchmarkReferenceSums(b *testing.B) {
	pix := randomPixels(8, 256*256)
	b.SetBytes(int64(len(pix)))
	b.ReportAllocs()
	for b.Loop() {
		_ = referenceSums(pix)
	}
}

// FuzzAdd checks the packed loop against the per-pixel sums, and that any
// split point merges back to the same accumulator.
func FuzzAdd(f *testing.F) {
	f.Add([]byte{255, 255, 255, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7}, uint16(3))
	f.Add(fill(255, 3*17), uint16(0))
	f.Fuzz(func(t *testing.T, pix []byte, cut uint16) {
		pix = pix[:len(pix)-len(pix)%3]
		var a Accumulator
		a.Add(pix)
		if want := referenceSums(pix); a != want {
			t.Fatalf("sums differ:\n got %+v\nwant %+v", a, want)
		}
		k := 3 * (int(cut) % (len(pix)/3 + 1))
		var x, y Accumulator
		x.Add(pix[:k])
		y.Add(pix[k:])
		y.Merge(&x)
		if y != a {
			t.Fatalf("split at %d: merged %+v, one pass %+v", k, y, a)
		}
	})
}
