package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// refDraw spells out the documented draw order with the generator's plain
// methods, so a reordering in Draw shows up as a mismatch.
func refDraw(rng *rand.Rand, srcW, srcH, crop int, sigma float32) Params {
	var p Params
	p.X = rng.IntN(srcW - crop + 1)
	p.Y = rng.IntN(srcH - crop + 1)
	p.Flip = rng.Uint64() >= 1<<63
	if sigma != 0 {
		p.Alpha[0] = float32(rng.NormFloat64() * float64(sigma))
		p.Alpha[1] = float32(rng.NormFloat64() * float64(sigma))
		p.Alpha[2] = float32(rng.NormFloat64() * float64(sigma))
	}
	return p
}

func TestDrawMatchesReference(t *testing.T) {
	tests := []struct {
		srcW, srcH, crop int
		sigma            float32
	}{
		{256, 256, 224, 0.1},
		{256, 256, 224, 0},
		{300, 256, 227, 0.5},
		{224, 224, 224, 0.1},
	}
	for _, tc := range tests {
		for id := range uint64(200) {
			got := Draw(RecordRNG(1, 2, id), tc.srcW, tc.srcH, tc.crop, tc.sigma)
			want := refDraw(RecordRNG(1, 2, id), tc.srcW, tc.srcH, tc.crop, tc.sigma)
			if got != want {
				t.Fatalf("%+v record %d: got %+v, want %+v", tc, id, got, want)
			}
		}
	}
}

// TestDrawGolden pins the stream for a few records. It fails if RecordSeed,
// the draw order or math/rand/v2's algorithms change, any of which would
// silently change every run's augmentation.
func TestDrawGolden(t *testing.T) {
	tests := []struct {
		seed   uint64
		epoch  int
		record uint64
		want   Params
	}{
		{0, 0, 0, Params{X: 6, Y: 29, Flip: false, Alpha: [3]float32{0.012307155, -0.045607053, -0.03808819}}},
		{0, 0, 1, Params{X: 14, Y: 14, Flip: true, Alpha: [3]float32{0.02005216, -0.0477713, 0.06566675}}},
		{0, 1, 0, Params{X: 30, Y: 6, Flip: false, Alpha: [3]float32{-0.1890303, -0.031235209, 0.06835049}}},
		{1, 0, 0, Params{X: 26, Y: 25, Flip: false, Alpha: [3]float32{0.03598209, 0.038684834, 0.016122965}}},
		{42, 89, 1281166, Params{X: 3, Y: 16, Flip: false, Alpha: [3]float32{-0.014808208, -0.057092495, 0.08242178}}},
		{18446744073709551615, 3, 1099511627776, Params{X: 14, Y: 22, Flip: false, Alpha: [3]float32{-0.23466827, -0.114022434, -0.055951346}}},
	}
	for _, tc := range tests {
		got := Draw(RecordRNG(tc.seed, tc.epoch, tc.record), 256, 256, 224, DefaultSigma)
		if got != tc.want {
			t.Errorf("seed %d epoch %d record %d: got %#v, want %#v", tc.seed, tc.epoch, tc.record, got, tc.want)
		}
	}
}

func TestDrawDistribution(t *testing.T) {
	const n = 40000
	const srcW, srcH, crop = 40, 36, 32 // 9 x positions, 5 y positions
	const sigma = 0.1
	var xs [srcW - crop + 1]int
	var ys [srcH - crop + 1]int
	flips := 0
	var sum, sumSq [3]float64
	for id := range uint64(n) {
		p := Draw(RecordRNG(99, 0, id), srcW, srcH, crop, sigma)
		if p.X < 0 || p.X > srcW-crop || p.Y < 0 || p.Y > srcH-crop {
			t.Fatalf("record %d: origin (%d,%d) out of range", id, p.X, p.Y)
		}
		xs[p.X]++
		ys[p.Y]++
		if p.Flip {
			flips++
		}
		for i, a := range p.Alpha {
			sum[i] += float64(a)
			sumSq[i] += float64(a) * float64(a)
		}
	}
	// Each count is binomial; 5 standard deviations keeps this from
	// flaking while still catching an excluded endpoint or a skew.
	checkUniform := func(name string, counts []int) {
		t.Helper()
		k := float64(len(counts))
		mean := n / k
		sd := math.Sqrt(n * (1 / k) * (1 - 1/k))
		for v, c := range counts {
			if math.Abs(float64(c)-mean) > 5*sd {
				t.Errorf("%s = %d drawn %d times, want about %.0f", name, v, c, mean)
			}
		}
	}
	checkUniform("x", xs[:])
	checkUniform("y", ys[:])
	if d := math.Abs(float64(flips) - n/2); d > 5*math.Sqrt(n/4) {
		t.Errorf("%d flips in %d draws", flips, n)
	}
	for i := range 3 {
		m := sum[i] / n
		sd := math.Sqrt(sumSq[i]/n - m*m)
		if math.Abs(m) > 5*sigma/math.Sqrt(n) || math.Abs(sd-sigma) > 0.02*sigma {
			t.Errorf("alpha[%d]: mean %.5f sd %.5f, want 0 and %v", i, m, sd, sigma)
		}
	}
}

func TestDrawSigmaZero(t *testing.T) {
	for id := range uint64(100) {
		with := Draw(RecordRNG(5, 1, id), 256, 256, 224, 0.1)
		without := Draw(RecordRNG(5, 1, id), 256, 256, 224, 0)
		if without.Alpha != [3]float32{} {
			t.Fatalf("sigma 0 gave alpha %v", without.Alpha)
		}
		// Alpha is drawn last, so turning lighting off keeps the crops.
		if with.X != without.X || with.Y != without.Y || with.Flip != without.Flip {
			t.Fatalf("record %d: sigma changed the crop: %+v vs %+v", id, with, without)
		}
	}
}

func TestDrawPanics(t *testing.T) {
	tests := []struct {
		name             string
		srcW, srcH, crop int
		sigma            float32
	}{
		{"crop wider than image", 200, 256, 224, 0.1},
		{"crop taller than image", 256, 200, 224, 0.1},
		{"zero crop", 256, 256, 0, 0.1},
		{"negative sigma", 256, 256, 224, -0.1},
		{"NaN sigma", 256, 256, 224, float32(math.NaN())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			Draw(RecordRNG(0, 0, 0), tc.srcW, tc.srcH, tc.crop, tc.sigma)
		})
	}
}

func TestRecordSeedDistinct(t *testing.T) {
	seen := make(map[[2]uint64]string)
	add := func(seed uint64, epoch int, id uint64) {
		s1, s2 := RecordSeed(seed, epoch, id)
		k := [2]uint64{s1, s2}
		who := fmt.Sprintf("(seed %d, epoch %d, record %d)", seed, epoch, id)
		if prev, ok := seen[k]; ok {
			t.Fatalf("RecordSeed collides for %s and %s", prev, who)
		}
		seen[k] = who
	}
	// Small values are where a weak mix (say seed+epoch+id) would collide.
	for seed := range uint64(8) {
		for epoch := range 8 {
			for id := range uint64(64) {
				add(seed, epoch, id)
			}
		}
	}
}

// TestRecordRNGWorkerIndependent hands the same records to different
// numbers of workers in different orders, each reusing one generator the
// way the pipeline would, and expects the same Params for every record.
func TestRecordRNGWorkerIndependent(t *testing.T) {
	const records = 2000
	want := make([]Params, records)
	for id := range want {
		want[id] = Draw(RecordRNG(42, 7, uint64(id)), 256, 256, 224, DefaultSigma)
	}
	for _, workers := range []int{1, 3, 8} {
		got := make([]Params, records)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				pcg := rand.NewPCG(0, 0)
				rng := rand.New(pcg)
				// Worker w takes every workers-th record, last first.
				for id := records - 1 - w; id >= 0; id -= workers {
					pcg.Seed(RecordSeed(42, 7, uint64(id)))
					got[id] = Draw(rng, 256, 256, 224, DefaultSigma)
				}
			})
		}
		wg.Wait()
		for id := range want {
			if got[id] != want[id] {
				t.Fatalf("%d workers: record %d got %+v, want %+v", workers, id, got[id], want[id])
			}
		}
	}
}

func TestMix64Bijective(t *testing.T) {
	// A bijection has no collisions; check a dense block and a sparse one.
	seen := make(map[uint64]uint64)
	for i := range uint64(1 << 14) {
		for _, v := range []uint64{i, (i + 1) << 40} {
			h := mix64(v)
			if prev, ok := seen[h]; ok {
				t.Fatalf("mix64 maps %#x and %#x to the same value", prev, v)
			}
			seen[h] = v
		}
	}
}

func TestSigmaFor(t *testing.T) {
	for _, tc := range []struct{ opt, want float32 }{
		{0, DefaultSigma},
		{-1, 0},
		{-1e-30, 0},
		{0.25, 0.25},
		{1e-45, 1e-45}, // the smallest float32 is a σ of its own, not the default
	} {
		if got := SigmaFor(tc.opt); got != tc.want {
			t.Errorf("SigmaFor(%g) = %g, want %g", tc.opt, got, tc.want)
		}
	}
}
