// Package augment owns the per-image pixel operations of AlexNet training
// and testing: random and fixed crops with horizontal mirroring, the
// per-record random draw that drives them, PCA lighting, and the
// uint8 → float32 normalisation. Everything here is a pure function on
// caller-owned buffers; nothing allocates on the hot path and nothing keeps
// state, so any number of goroutines may call any function at once as long
// as their destination buffers differ.
//
// Pixels are 8-bit interleaved RGB, HWC, row-major: byte (y*w + x)*3 + c is
// channel c (0 R, 1 G, 2 B) of pixel (x, y). Normalised output is float32
// planar CHW. Functions panic when a buffer is too short or a window does
// not fit, as slice indexing would: those are programming errors, not data
// errors.
//
// The float contracts below are what the GPU kernel must reproduce bit for
// bit; KnownValues holds a table of cases it can be tested against.
//
// # Random draw
//
// Each training record gets its own generator, RecordRNG(seed, epoch,
// recordID), a PCG seeded by RecordSeed, so a record's crop, mirror and
// lighting depend on (seed, epoch, recordID) only, never on which worker
// handles it or in what order. Draw then takes, in exactly this order:
//
//  1. X = rng.IntN(srcW-crop+1)
//  2. Y = rng.IntN(srcH-crop+1)
//  3. Flip = the top bit of rng.Uint64()
//  4. Alpha[i] = float32(rng.NormFloat64() * float64(sigma)), i = 0, 1, 2;
//     skipped, leaving zeros, when sigma == 0. Being last, this cannot
//     shift X, Y or Flip.
//
// Results depend on math/rand/v2's IntN and NormFloat64 algorithms on
// 64-bit platforms; TestDrawGolden pins them, so a Go release that changed
// them would be caught rather than silently changing the data order.
//
// # PCA lighting
//
// The paper adds Σᵢ pᵢ·αᵢ·λᵢ to every pixel, with pᵢ, λᵢ the eigenvectors
// and eigenvalues of the RGB covariance and αᵢ ~ N(0, 0.1). Read literally
// in 0..255 units that is absurd: ImageNet's largest eigenvalue is about
// 121.78² ≈ 14,830, so the offset along it would have a standard deviation
// of about 1,483 levels, six times the whole pixel range. The formula is not
// unit-consistent (λ scales with the square of the pixel unit, the offset
// should scale with the unit itself), and the authors' own code,
// cuda-convnet2's ImageDataProvider, multiplies by the standard deviations
// √λᵢ (its "color_stdevs", 19.72, 37.09, 121.78). We follow that code:
//
//	offset[c] = Σᵢ eigvec[c][i] · alpha[i] · √eigval[i]      (0..255 units)
//
// LightingOffset takes eigval as meta.json's "pca_eigval", the covariance
// eigenvalues (variances, 0..255² units), and takes the square roots
// itself; eigvec is meta.json's "pca_eigvec", [row][col] with the
// eigenvectors as columns. The sum is formed in float64 in the order
// i = 0, 1, 2 and rounded once to float32. It runs on the CPU, once per
// image; the GPU receives its result.
//
// Sanity check: since Σᵢ P[c][i]²·λᵢ = Cov[c][c], each channel's offset is
// normal with standard deviation σ times that channel's pixel standard
// deviation. With cuda-convnet2's statistics and σ = 0.1 that is 7.41, 7.20
// and 7.70 levels for R, G and B (12.2 levels along the first, brightness,
// component), strongly correlated across channels. For comparison,
// fb.resnet.torch and its copies multiply by eigenvalues in 0..1² units
// (0.2175, 0.0188, 0.0045), which gives about 3.2 levels per channel and
// would change with the pixel scale.
//
// The offset is added to the pixel values in 0..255 units before
// normalisation, with no clamping to [0, 255]: the paper adds it to the RGB
// values, and clamping would bias bright and dark pixels. cuda-convnet2
// also scales its training images by 1/(1+σ); the paper does not, and
// neither do we.
//
// # Normalisation
//
// For a pixel value v (uint8) in channel c, with per-dataset mean and std
// and a per-image lighting offset, all float32:
//
//	bias[c]  = offset[c] - mean[c]              float32 subtraction
//	scale[c] = float32(1 / float64(std[c]))     divide in float64, round once
//	out      = (float32(v) + bias[c]) * scale[c] float32 add, then float32 multiply
//
// Each step rounds to nearest, ties to even. The scale equals an IEEE
// float32 division 1.0f/std (rounding twice cannot change a quotient of
// floats), so a kernel may compute it either way, but not with an
// approximate reciprocal. There is no multiply-add to contract into an
// FMA, but a kernel should still write __fadd_rn and __fmul_rn, and must
// not divide each value by std instead of multiplying. Affine computes
// bias and scale so that host code for the GPU uses the same constants.
// Normalize evaluates the formula into a 256-entry table per channel and
// then gathers, so its results are the formula's exactly.
//
// # Test-time crops
//
// CenterCrop takes the window at ((srcW-crop)/2, (srcH-crop)/2), rounding
// down. TenCrop writes, in this order: top-left, top-right, bottom-left,
// bottom-right, centre, then the same five windows mirrored.
package augment
