package augment_test

import (
	"fmt"

	"github.com/alexnet-repro/alexnet/augment"
)

// One training record's augmentation, as a pipeline worker does it: the
// same (seed, epoch, record) always gives the same crop, mirror and
// lighting, whichever worker runs it.
func Example() {
	const srcW, srcH, crop = 8, 6, 4
	src := make([]uint8, srcW*srcH*3)
	for i := range src {
		src[i] = uint8(i)
	}
	eigval := [3]float32{14830, 1376, 389} // meta.json "pca_eigval"
	eigvec := [3][3]float32{               // meta.json "pca_eigvec"
		{-0.564, -0.713, 0.418},
		{-0.576, -0.024, -0.817},
		{-0.592, 0.701, 0.397},
	}
	mean := [3]float32{127.30, 119.72, 104.91}
	std := [3]float32{58.4, 57.1, 57.4}

	p := augment.Draw(augment.RecordRNG(1, 0, 17), srcW, srcH, crop, augment.DefaultSigma)
	pix := make([]uint8, crop*crop*3)
	augment.RandomCrop(pix, src, srcW, srcH, crop, p)
	off := augment.LightingOffset(eigval, eigvec, p.Alpha)
	out := make([]float32, 3*crop*crop)
	augment.Normalize(out, pix, crop, crop, mean, std, off)

	fmt.Printf("origin (%d,%d) flip %v\n", p.X, p.Y, p.Flip)
	fmt.Printf("first pixel %v, offset %.2f\n", pix[:3], off)
	fmt.Printf("normalised R %.4f\n", out[0])
	// Output:
	// origin (3,2) flip false
	// first pixel [57 58 59], offset [14.04 13.45 8.52]
	// normalised R -0.9634
}

// Mirroring reverses the pixels of each row, keeping each pixel's channels
// in order.
func ExampleCrop() {
	src := []uint8{
		1, 2, 3, 4, 5, 6, 7, 8, 9,
		10, 11, 12, 13, 14, 15, 16, 17, 18,
	}
	dst := make([]uint8, 2*2*3)
	augment.Crop(dst, src, 3, 2, 1, 0, 2, 2, true)
	fmt.Println(dst)
	// Output: [7 8 9 4 5 6 16 17 18 13 14 15]
}
