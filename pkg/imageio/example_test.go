package imageio_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/alexnet-repro/alexnet/pkg/imageio"
)

// A worker decodes and crops one file at a time into a reused buffer; the
// content decides the decoder, so PNG bytes in a .JPEG file are fine.
func ExampleDecoder_Preprocess() {
	src := image.NewGray(image.Rect(0, 0, 500, 375))
	for i := range src.Pix {
		src.Pix[i] = 200
	}
	var file bytes.Buffer
	if err := png.Encode(&file, src); err != nil {
		panic(err)
	}

	d := imageio.NewDecoder() // one per goroutine
	defer d.Close()
	dst := make([]uint8, 256*256*3)
	if err := d.Preprocess(file.Bytes(), 256, dst); err != nil {
		fmt.Println("skip:", err)
		return
	}
	fmt.Println(len(dst), dst[:3])

	err := d.Preprocess(file.Bytes()[:100], 256, dst)
	fmt.Println(err)
	// Output:
	// 196608 [200 200 200]
	// png: truncated PNG (invalid format: not enough pixel data)
}

// ResizedSize gives the size before the centre crop: shorter side to 256,
// longer side scaled and rounded down.
func ExampleResizedSize() {
	fmt.Println(imageio.ResizedSize(500, 375, 256))
	fmt.Println(imageio.ResizedSize(50, 40, 256))
	// Output:
	// 341 256
	// 320 256
}

func ExampleFromImage() {
	m := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	m.Set(0, 0, color.NRGBA{255, 0, 0, 10}) // alpha is dropped, not blended
	fmt.Println(imageio.FromImage(m).Pix)
	// Output: [255 0 0 0 0 0]
}
