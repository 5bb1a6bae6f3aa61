// Package stats owns the dataset colour statistics that ingest writes into
// meta.json: per-channel mean and standard deviation for input
// normalisation, and the RGB covariance with its eigen-decomposition for
// AlexNet's PCA lighting augmentation.
//
// Accumulation is exact integer arithmetic (sums of v, v² and the three
// cross products, in uint64), so an Accumulator is mergeable and its result
// depends only on the multiset of pixels added: any order, any partition
// across workers, any merge order gives bit-identical Stats. Floating point
// appears only in Stats, once, from exact integers.
//
// An Accumulator is not safe for concurrent use; give each worker its own
// and Merge them at the end.
package stats

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// MaxPixels is the most pixels an Accumulator can hold before a sum of
// squares could overflow uint64 (255² per pixel). ImageNet's train set at
// 256×256 is about 8.4e10 pixels, some 3,000 times below it.
const MaxPixels = math.MaxUint64 / (255 * 255)

// blockPixels bounds one pass of the packed inner loop. The loop keeps a
// sum and a sum of squares (or two cross products) in the low and high 32
// bits of one uint64; 65025 × 65536 < 2³², so neither half can carry
// within a block.
const blockPixels = 1 << 16

// Accumulator sums pixel moments exactly. The zero value is ready to use.
type Accumulator struct {
	n   uint64    // pixels
	s   [3]uint64 // Σr, Σg, Σb
	sq  [3]uint64 // Σr², Σg², Σb²
	rg  uint64    // Σrg
	rb  uint64    // Σrb
	gb  uint64    // Σgb
	bad bool      // a slice whose length was not a multiple of 3 was added
}

// sumSq[v] packs v in the low 32 bits and v² in the high 32 bits, so one
// table load and one add accumulate both moments of a channel.
var sumSq = func() (t [256]uint64) {
	for v := range t {
		t[v] = uint64(v) | uint64(v*v)<<32
	}
	return t
}()

// Add accumulates interleaved RGB pixels (r, g, b, r, g, b, ...). A length
// that is not a multiple of 3 is a caller bug: the trailing bytes are
// ignored and Stats reports an error, rather than panicking inside a
// worker.
func (a *Accumulator) Add(pix []uint8) {
	if len(pix)%3 != 0 {
		a.bad = true
		pix = pix[:len(pix)-len(pix)%3]
	}
	for len(pix) > 0 {
		m := min(len(pix), 3*blockPixels)
		a.addBlock(pix[:m])
		pix = pix[m:]
	}
}

// addBlock handles at most blockPixels pixels. Per pixel it does three
// table loads and two multiplies: r·(g | b<<32) yields rg and rb in one
// product. Four pixels per iteration, each consumed as soon as it is
// loaded, keep all five accumulators in registers (loading all twelve bytes
// first made the compiler spill); the fixed-length reslice lets it drop the
// per-byte bounds checks. About 2.3× the plain per-pixel loop.
func (a *Accumulator) addBlock(p []uint8) {
	var cr, cg, cb, crgb, cgb uint64
	n := uint64(len(p) / 3)
	i := 0
	for ; i <= len(p)-12; i += 12 {
		q := p[i : i+12 : i+12]
		r, g, b := q[0], q[1], q[2]
		cr += sumSq[r]
		cg += sumSq[g]
		cb += sumSq[b]
		crgb += uint64(r) * (uint64(g) | uint64(b)<<32)
		cgb += uint64(g) * uint64(b)
		r, g, b = q[3], q[4], q[5]
		cr += sumSq[r]
		cg += sumSq[g]
		cb += sumSq[b]
		crgb += uint64(r) * (uint64(g) | uint64(b)<<32)
		cgb += uint64(g) * uint64(b)
		r, g, b = q[6], q[7], q[8]
		cr += sumSq[r]
		cg += sumSq[g]
		cb += sumSq[b]
		crgb += uint64(r) * (uint64(g) | uint64(b)<<32)
		cgb += uint64(g) * uint64(b)
		r, g, b = q[9], q[10], q[11]
		cr += sumSq[r]
		cg += sumSq[g]
		cb += sumSq[b]
		crgb += uint64(r) * (uint64(g) | uint64(b)<<32)
		cgb += uint64(g) * uint64(b)
	}
	for ; i <= len(p)-3; i += 3 {
		q := p[i : i+3 : i+3]
		r, g, b := q[0], q[1], q[2]
		cr += sumSq[r]
		cg += sumSq[g]
		cb += sumSq[b]
		crgb += uint64(r) * (uint64(g) | uint64(b)<<32)
		cgb += uint64(g) * uint64(b)
	}
	const lo = 1<<32 - 1
	a.n += n
	a.s[0] += cr & lo
	a.s[1] += cg & lo
	a.s[2] += cb & lo
	a.sq[0] += cr >> 32
	a.sq[1] += cg >> 32
	a.sq[2] += cb >> 32
	a.rg += crgb & lo
	a.rb += crgb >> 32
	a.gb += cgb
}

// Merge adds b's pixels to a. b is unchanged.
func (a *Accumulator) Merge(b *Accumulator) {
	a.n += b.n
	for c := range 3 {
		a.s[c] += b.s[c]
		a.sq[c] += b.sq[c]
	}
	a.rg += b.rg
	a.rb += b.rb
	a.gb += b.gb
	a.bad = a.bad || b.bad
}

// Count is the number of pixels added.
func (a *Accumulator) Count() uint64 { return a.n }

// Stats are the colour statistics of a set of RGB pixels, in 0..255 units,
// channels in R, G, B order. They are meant for meta.json as they are.
//
// In JSON every [3][3] array is written row-major: "cov" is
// [[rr, rg, rb], [gr, gg, gb], [br, bg, bb]], and "pca_eigvec" is
// [row][col] with the eigenvectors as its columns, so pca_eigvec[i][j] is
// component i (R, G, B) of the eigenvector for pca_eigval[j]. This is the
// layout of fb.resnet.torch's lighting matrix (its first column, all one
// sign, is the brightness direction), so its values can be compared
// as they are: do not transpose either, which would turn a change of
// brightness into a swing between red and green.
type Stats struct {
	Pixels uint64     `json:"pixels"`
	Mean   [3]float64 `json:"mean"`
	// Std is the population standard deviation (divide by N, not N−1).
	Std [3]float64    `json:"std"`
	Cov [3][3]float64 `json:"cov"`
	// EigVal holds the covariance eigenvalues in descending order. Tiny
	// negative values from rounding are clamped to 0 so that their square
	// roots, the PCA standard deviations, are defined.
	EigVal [3]float64 `json:"pca_eigval"`
	// EigVec's column j is the unit eigenvector for EigVal[j]. The sign of
	// each column is fixed so that its largest-magnitude component is
	// positive (the first such component on a tie), making the output
	// reproducible across LAPACK implementations.
	EigVec [3][3]float64 `json:"pca_eigvec"`
}

// ErrEmpty is returned by Stats when no pixel was added.
var ErrEmpty = errors.New("stats: no pixels")

// Stats computes the statistics. Each moment is formed exactly, as
// (N·Σxy − Σx·Σy) / N² in arbitrary precision, and rounded once to
// float64, so there is no cancellation error even for near-constant
// channels.
func (a *Accumulator) Stats() (Stats, error) {
	var st Stats
	switch {
	case a.bad:
		return st, errors.New("stats: Add was given a slice whose length is not a multiple of 3")
	case a.n == 0:
		return st, ErrEmpty
	case a.n > MaxPixels:
		return st, fmt.Errorf("stats: %d pixels exceeds the exact-accumulation limit of %d", a.n, uint64(MaxPixels))
	}
	st.Pixels = a.n
	n := new(big.Int).SetUint64(a.n)
	n2 := new(big.Int).Mul(n, n)
	sum := func(c int) *big.Int { return new(big.Int).SetUint64(a.s[c]) }
	prod := [3][3]uint64{
		{a.sq[0], a.rg, a.rb},
		{a.rg, a.sq[1], a.gb},
		{a.rb, a.gb, a.sq[2]},
	}
	for i := range 3 {
		st.Mean[i], _ = new(big.Rat).SetFrac(sum(i), n).Float64()
		for j := range 3 {
			num := new(big.Int).Mul(n, new(big.Int).SetUint64(prod[i][j]))
			num.Sub(num, new(big.Int).Mul(sum(i), sum(j)))
			st.Cov[i][j], _ = new(big.Rat).SetFrac(num, n2).Float64()
		}
		st.Std[i] = math.Sqrt(st.Cov[i][i])
	}
	val, vec, err := eigen(st.Cov)
	if err != nil {
		return st, err
	}
	st.EigVal, st.EigVec = val, vec
	return st, nil
}

// eigen decomposes a symmetric 3×3 matrix, eigenvalues descending,
// eigenvectors as sign-normalised columns.
func eigen(c [3][3]float64) (val [3]float64, vec [3][3]float64, err error) {
	sym := mat.NewSymDense(3, []float64{
		c[0][0], c[0][1], c[0][2],
		c[1][0], c[1][1], c[1][2],
		c[2][0], c[2][1], c[2][2],
	})
	var es mat.EigenSym
	if !es.Factorize(sym, true) {
		return val, vec, errors.New("stats: eigen-decomposition of the covariance did not converge")
	}
	vals := es.Values(nil)
	var v mat.Dense
	es.VectorsTo(&v)
	order := []int{0, 1, 2}
	// Stable, so equal eigenvalues keep LAPACK's order, which is itself
	// deterministic for a given input.
	sort.SliceStable(order, func(x, y int) bool { return vals[order[x]] > vals[order[y]] })
	for j, src := range order {
		val[j] = max(vals[src], 0)
		big := 0
		for i := range 3 {
			vec[i][j] = v.At(i, src)
			if math.Abs(vec[i][j]) > math.Abs(vec[big][j]) {
				big = i
			}
		}
		if vec[big][j] < 0 {
			for i := range 3 {
				vec[i][j] = -vec[i][j]
			}
		}
		for i := range 3 {
			if vec[i][j] == 0 {
				vec[i][j] = 0 // no -0 in meta.json
			}
		}
	}
	return val, vec, nil
}
