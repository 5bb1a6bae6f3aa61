package augment

import "fmt"

// Affine returns the per-channel constants of the normalisation contract:
// bias = offset - mean in float32, and scale = 1/std divided in float64
// and rounded once. A pixel value v normalises to (float32(v) + bias) * scale.
// GPU host code should pass these to the kernel rather than recompute them.
func Affine(mean, std, offset [3]float32) (bias, scale [3]float32) {
	for c := range 3 {
		bias[c] = offset[c] - mean[c]
		scale[c] = float32(1 / float64(std[c]))
	}
	return bias, scale
}

// Normalize converts a w×h RGB image (HWC uint8) into planar float32 CHW
// in dst (at least 3*w*h values): channel c of each pixel becomes
// (float32(v) + offset[c] - mean[c]) * (1/std[c]), evaluated exactly as the
// package documentation specifies. offset is the image's LightingOffset,
// or zero for no lighting; nothing is clamped.
func Normalize(dst []float32, src []uint8, w, h int, mean, std, offset [3]float32) {
	n := w * h
	if w <= 0 || h <= 0 || len(src) < 3*n || len(dst) < 3*n {
		panic(fmt.Sprintf("augment: Normalize: %dx%d image needs %d source bytes and %d destination values, have %d and %d",
			w, h, 3*n, 3*n, len(src), len(dst)))
	}
	bias, scale := Affine(mean, std, offset)
	// A pixel value has only 256 possibilities, so evaluating the formula
	// for each once turns the loop into three lookups per pixel, with no
	// conversions or arithmetic, and cannot change a result.
	var lut [3][256]float32
	for c := range lut {
		for v := range lut[c] {
			sum := float32(float32(v) + bias[c])
			lut[c][v] = sum * scale[c]
		}
	}
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:3*n]
	src = src[:3*n]
	for i := range r {
		p := src[3*i : 3*i+3 : 3*i+3]
		r[i] = lut[0][p[0]]
		g[i] = lut[1][p[1]]
		b[i] = lut[2][p[2]]
	}
}

// NormalizeBatch normalises n consecutive w×h images from src (NHWC uint8)
// into dst (NCHW float32, at least n*3*w*h values). Image k uses offsets[k];
// offsets may be nil for no lighting, as at test time, and otherwise needs
// at least n entries.
func NormalizeBatch(dst []float32, src []uint8, n, w, h int, mean, std [3]float32, offsets [][3]float32) {
	if offsets != nil && len(offsets) < n {
		panic(fmt.Sprintf("augment: NormalizeBatch: %d offsets for %d images", len(offsets), n))
	}
	size := 3 * w * h
	if n < 0 || len(src) < n*size || len(dst) < n*size {
		panic(fmt.Sprintf("augment: NormalizeBatch: %d images of %dx%d need %d source bytes and %d destination values, have %d and %d",
			n, w, h, n*size, n*size, len(src), len(dst)))
	}
	var off [3]float32
	for k := range n {
		if offsets != nil {
			off = offsets[k]
		}
		Normalize(dst[k*size:(k+1)*size], src[k*size:(k+1)*size], w, h, mean, std, off)
	}
}
