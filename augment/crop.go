package augment

import (
	"encoding/binary"
	"fmt"
)

// Crop copies the cw×ch window whose top-left pixel is (x, y) from src, a
// srcW×srcH RGB image, into dst (at least cw*ch*3 bytes). With flip the
// window is mirrored left to right. dst must not overlap src. It panics if
// the window does not fit in the image or a buffer is too short.
func Crop(dst, src []uint8, srcW, srcH, x, y, cw, ch int, flip bool) {
	checkWindow("Crop", len(dst), len(src), srcW, srcH, x, y, cw, ch)
	stride := srcW * 3
	rowLen := cw * 3
	for r := range ch {
		CropRow(dst[r*rowLen:(r+1)*rowLen], src[(y+r)*stride:(y+r+1)*stride], x, cw, flip)
	}
}

// CropRow copies the cw pixels of row (RGB) that start at pixel x into dst,
// mirrored when flip: one row of Crop, for decoders that deliver an image
// row by row (shards.Decoder.DecodeRows), so that a crop is written
// straight from a cache-hot row to its batch slot.
func CropRow(dst, row []uint8, x, cw int, flip bool) {
	if x < 0 || cw < 0 || 3*(x+cw) > len(row) || len(dst) < 3*cw {
		panic(fmt.Sprintf("augment: CropRow: %d pixels at %d from a %d-byte row into %d bytes", cw, x, len(row), len(dst)))
	}
	s := row[3*x : 3*(x+cw)]
	if flip {
		flipRow(dst[:len(s)], s)
		return
	}
	copy(dst, s)
}

// RandomCrop copies the crop×crop window that p, from Draw, chose.
func RandomCrop(dst, src []uint8, srcW, srcH, crop int, p Params) {
	Crop(dst, src, srcW, srcH, p.X, p.Y, crop, crop, p.Flip)
}

// CenterCrop copies the central crop×crop window, its origin rounded down
// when the margin is odd.
func CenterCrop(dst, src []uint8, srcW, srcH, crop int) {
	Crop(dst, src, srcW, srcH, (srcW-crop)/2, (srcH-crop)/2, crop, crop, false)
}

// TenCrop writes the paper's ten test views into dsts, in this order:
// top-left, top-right, bottom-left, bottom-right, centre, then those five
// mirrored. Each dsts[i] needs crop*crop*3 bytes, and none may overlap
// another or src.
func TenCrop(dsts [10][]uint8, src []uint8, srcW, srcH, crop int) {
	mx, my := srcW-crop, srcH-crop
	origins := [5][2]int{{0, 0}, {mx, 0}, {0, my}, {mx, my}, {mx / 2, my / 2}}
	for i, o := range origins {
		Crop(dsts[i], src, srcW, srcH, o[0], o[1], crop, crop, false)
		// Mirroring the crop just made reads a small, cache-hot buffer
		// instead of striding through the source a second time.
		flipRows(dsts[i+5], dsts[i], crop, crop)
	}
}

// flipRows mirrors a w×h image left to right; dst and src must not overlap.
func flipRows(dst, src []uint8, w, h int) {
	n := w * h * 3
	if len(dst) < n || len(src) < n {
		panic(fmt.Sprintf("augment: TenCrop: a buffer is shorter than %d bytes", n))
	}
	rowLen := w * 3
	for r := range h {
		flipRow(dst[r*rowLen:(r+1)*rowLen], src[r*rowLen:(r+1)*rowLen])
	}
}

// flipRow writes the pixels of src in reverse order into dst; both hold
// the same whole number of 3-byte pixels and must not overlap.
//
// Pixels move in pairs, each pair as one 8-byte load and one 8-byte store
// (swapPair). The load ends at the pair, so its two spare bytes come from
// the pixel to the pair's left in the source; the store starts at the
// pair, so its two spare bytes land on the next destination pixel, which a
// later store overwrites. Both stay inside the row for every pair but the
// one at source byte 0, so the last one or two pixels go one at a time.
// The main loop moves four pairs through one bounds-checked window each of
// source and destination. A pair then costs about one iteration of a
// plain aligned load-shift-store loop, half of what moving its six bytes
// one at a time costs.
func flipRow(dst, src []uint8) {
	n := len(src) / 3
	dst = dst[:n*3]
	j := 0
	for ; j+8 < n; j += 8 {
		o := (n-8-j)*3 - 2 // 2 spare bytes, then source pixels n-8-j .. n-1-j
		s := src[o : o+26 : o+26]
		d := dst[j*3 : j*3+26 : j*3+26]
		p3 := binary.LittleEndian.Uint64(s[18:26])
		p2 := binary.LittleEndian.Uint64(s[12:20])
		p1 := binary.LittleEndian.Uint64(s[6:14])
		p0 := binary.LittleEndian.Uint64(s[0:8])
		binary.LittleEndian.PutUint64(d[0:8], swapPair(p3))
		binary.LittleEndian.PutUint64(d[6:14], swapPair(p2))
		binary.LittleEndian.PutUint64(d[12:20], swapPair(p1))
		binary.LittleEndian.PutUint64(d[18:26], swapPair(p0))
	}
	for ; j+2 < n; j += 2 {
		o := (n-2-j)*3 - 2
		binary.LittleEndian.PutUint64(dst[j*3:j*3+8], swapPair(binary.LittleEndian.Uint64(src[o:o+8])))
	}
	for ; j < n; j++ {
		s := src[(n-1-j)*3 : (n-j)*3]
		d := dst[j*3 : j*3+3]
		d[0], d[1], d[2] = s[0], s[1], s[2]
	}
}

// swapPair takes 8 little-endian bytes holding 2 spare bytes, pixel a and
// pixel b, and returns b, a and 2 spare bytes. The spare bytes are left as
// whatever the shift brings in: were they zero, the compiler would split
// the 8-byte store into four smaller ones.
func swapPair(u uint64) uint64 {
	return u>>40 | (u<<8)&^0xffffff
}

func checkWindow(fn string, dstLen, srcLen, srcW, srcH, x, y, cw, ch int) {
	if srcW <= 0 || srcH <= 0 || cw <= 0 || ch <= 0 || x < 0 || y < 0 || x > srcW-cw || y > srcH-ch {
		panic(fmt.Sprintf("augment: %s: %dx%d window at (%d,%d) does not fit a %dx%d image", fn, cw, ch, x, y, srcW, srcH))
	}
	if srcLen < srcW*srcH*3 {
		panic(fmt.Sprintf("augment: %s: source has %d bytes, want %d for %dx%d RGB", fn, srcLen, srcW*srcH*3, srcW, srcH))
	}
	if dstLen < cw*ch*3 {
		panic(fmt.Sprintf("augment: %s: destination has %d bytes, want %d for %dx%d RGB", fn, dstLen, cw*ch*3, cw, ch))
	}
}
