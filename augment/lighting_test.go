package augment

import (
	"math"
	"math/rand/v2"
	"testing"
)

// cudaConvnet2 holds the ImageNet PCA from cuda-convnet2, as meta.json
// would carry it: eigenvalues (the squared standard deviations), largest
// first, and the eigenvectors as columns in the same order.
var cudaConvnet2 = struct {
	eigval [3]float32
	eigvec [3][3]float32
}{
	eigval: [3]float32{121.78 * 121.78, 37.09 * 37.09, 19.72 * 19.72},
	eigvec: [3][3]float32{
		{-0.564, -0.713, 0.418},
		{-0.576, -0.024, -0.817},
		{-0.592, 0.701, 0.397},
	},
}

// refLighting forms the paper's sum as a matrix product P·diag(√λ)·α,
// column by column.
func refLighting(eigval [3]float32, eigvec [3][3]float32, alpha [3]float32) [3]float64 {
	var out [3]float64
	for i := range 3 {
		w := float64(alpha[i]) * math.Sqrt(math.Max(0, float64(eigval[i])))
		for c := range 3 {
			out[c] += float64(eigvec[c][i]) * w
		}
	}
	return out
}

func TestLightingOffset(t *testing.T) {
	id := [3][3]float32{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	tests := []struct {
		name   string
		eigval [3]float32
		eigvec [3][3]float32
		alpha  [3]float32
		want   [3]float32
	}{
		// Fails if λ is used instead of √λ: that would give 1.6, not 0.4.
		{"square root of the eigenvalue", [3]float32{16, 0, 0}, id, [3]float32{0.1, 0, 0}, [3]float32{0.4, 0, 0}},
		{"zero alpha", cudaConvnet2.eigval, cudaConvnet2.eigvec, [3]float32{}, [3]float32{}},
		{"columns are eigenvectors", [3]float32{4, 0, 0},
			[3][3]float32{{0.6, 0, 0}, {0.8, 0, 0}, {0, 0, 0}}, [3]float32{1, 0, 0}, [3]float32{1.2, 1.6, 0}},
		{"negative eigenvalue counts as zero", [3]float32{-1e-9, 9, 0}, id, [3]float32{5, -1, 0}, [3]float32{0, -3, 0}},
		{"all components add", [3]float32{1, 4, 9}, [3][3]float32{{1, 1, 1}, {0, 0, 0}, {1, -1, 1}},
			[3]float32{1, 1, 1}, [3]float32{6, 0, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LightingOffset(tc.eigval, tc.eigvec, tc.alpha); !within1ulp(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func within1ulp(got, want [3]float32) bool {
	for c := range 3 {
		if got[c] != want[c] &&
			got[c] != math.Nextafter32(want[c], float32(math.Inf(1))) &&
			got[c] != math.Nextafter32(want[c], float32(math.Inf(-1))) {
			return false
		}
	}
	return true
}

func TestLightingOffsetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 10000 {
		var eigval, alpha [3]float32
		var eigvec [3][3]float32
		for i := range 3 {
			eigval[i] = float32(rng.Float64() * 20000)
			alpha[i] = float32(rng.NormFloat64() * 0.1)
			for c := range 3 {
				eigvec[c][i] = float32(rng.Float64()*2 - 1)
			}
		}
		got := LightingOffset(eigval, eigvec, alpha)
		ref := refLighting(eigval, eigvec, alpha)
		// Rounded once from float64, the result is the nearest float32 to
		// the float64 sum, whatever order that sum was formed in, except
		// within a few float64 ulps of a tie.
		for c := range 3 {
			if math.Abs(float64(got[c])-ref[c]) > 1e-6*(math.Abs(ref[c])+1) {
				t.Fatalf("eigval %v eigvec %v alpha %v: channel %d got %v, want %v", eigval, eigvec, alpha, c, got[c], ref[c])
			}
		}
	}
}

// TestLightingMagnitude checks the figures in the package documentation:
// with cuda-convnet2's statistics and σ = 0.1, each channel's offset has a
// standard deviation of σ·√Cov[c][c], about 7.41, 7.20 and 7.70 levels.
func TestLightingMagnitude(t *testing.T) {
	want := [3]float64{7.41, 7.20, 7.70}
	const n = 20000
	var sumSq [3]float64
	for id := range uint64(n) {
		p := Draw(RecordRNG(3, 0, id), 256, 256, 224, DefaultSigma)
		off := LightingOffset(cudaConvnet2.eigval, cudaConvnet2.eigvec, p.Alpha)
		for c := range 3 {
			sumSq[c] += float64(off[c]) * float64(off[c])
		}
	}
	for c := range 3 {
		// The sample sd of 20000 normals is within 3% with overwhelming
		// probability; the literal-λ reading would give about 850.
		if sd := math.Sqrt(sumSq[c] / n); math.Abs(sd-want[c]) > 0.03*want[c] {
			t.Errorf("channel %d: offset sd %.2f, want about %.2f", c, sd, want[c])
		}
	}
}
