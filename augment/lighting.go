package augment

import "math"

// LightingOffset returns the PCA lighting offset for one image, per
// channel, in 0..255 units: Σᵢ eigvec[c][i]·alpha[i]·√eigval[i].
//
// eigval are the RGB covariance eigenvalues (variances, in 0..255² units,
// meta.json's "pca_eigval"), not their square roots; eigvec[c][i] is
// component c of the eigenvector for eigval[i] (meta.json's "pca_eigvec").
// The package documentation explains why the square root is taken. A
// negative eigenvalue, which can only be rounding noise, counts as 0.
func LightingOffset(eigval [3]float32, eigvec [3][3]float32, alpha [3]float32) [3]float32 {
	var s [3]float64
	for i := range s {
		s[i] = float64(alpha[i]) * math.Sqrt(max(float64(eigval[i]), 0))
	}
	var off [3]float32
	for c := range off {
		// The conversions round each product, so no platform may fuse them
		// into a multiply-add and change the result.
		sum := float64(float64(eigvec[c][0]) * s[0])
		sum += float64(float64(eigvec[c][1]) * s[1])
		sum += float64(float64(eigvec[c][2]) * s[2])
		off[c] = float32(sum)
	}
	return off
}
