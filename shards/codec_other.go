//go:build !amd64

package shards

var useAVX2 = false

func unfilterRowAVX2(out, up, res []byte, plane, npx int, mirror bool) { panic("unreachable") }

func filterRowsAVX2(res, pix []byte, w, h, y0, y1, npx int) { panic("unreachable") }

func setAVX2(bool) {}

type huffLoop struct {
	src, out *byte
	tbl      *uint32
	off      [4]int64
	used     [4]uint64
	pos      [4]int64
	lim, low [4]int64
}

var useHuffAsm = false

func huffLoop4BMI2(*huffLoop) { panic("unreachable") }

func huffLoop2BMI2(*huffLoop) { panic("unreachable") }

func huffLoop1BMI2(*huffLoop) { panic("unreachable") }

func setHuffAsm(bool) {}
