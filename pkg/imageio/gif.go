package imageio

import (
	"image"
	"image/color"
	"image/draw"
)

// gifOpaque returns data with the transparency flag of the first frame's
// Graphic Control Extension cleared, on a copy, or data itself when that
// frame declares no transparent colour. image/gif replaces the transparent
// palette entry with transparent black, losing its colour; Pillow's
// convert("RGB"), the reference, keeps the palette's colour for those
// pixels. Anything malformed returns data unchanged, for the decoder to
// report.
func gifOpaque(data []byte) []byte {
	const header = 13 // "GIF89a", logical screen descriptor
	if len(data) < header {
		return data
	}
	p := header
	if flags := data[10]; flags&0x80 != 0 {
		p += 3 << (flags&7 + 1) // global colour table
	}
	for p < len(data) {
		switch data[p] {
		case 0x21: // extension: label, then sub-blocks ending with a zero size
			if p+1 >= len(data) {
				return data
			}
			label := data[p+1]
			q := p + 2
			if label == 0xF9 && q+5 < len(data) && data[q] == 4 && data[q+1]&1 != 0 {
				out := append([]byte(nil), data...)
				out[q+1] &^= 1
				return out
			}
			for q < len(data) && data[q] != 0 {
				q += int(data[q]) + 1
			}
			p = q + 1
		default: // 0x2C, the first image descriptor; 0x3B, the trailer; or damage
			return data
		}
	}
	return data
}

// gifOnScreen places a first frame that does not cover the logical screen
// (w×h) on it, the rest in the background colour: the background index of
// the screen descriptor, in the frame's palette, as Pillow shows the frame
// (image/gif gives the frame alone, at its own size and offset).
func gifOnScreen(m image.Image, data []byte, w, h int) image.Image {
	b := m.Bounds()
	if b == image.Rect(0, 0, w, h) {
		return m
	}
	bg := color.Color(color.Black)
	if p, ok := m.(*image.Paletted); ok && len(data) > 11 && int(data[11]) < len(p.Palette) {
		bg = p.Palette[data[11]]
	}
	screen := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(screen, screen.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	draw.Draw(screen, b, m, b.Min, draw.Src)
	return screen
}
