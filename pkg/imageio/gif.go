package imageio

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
