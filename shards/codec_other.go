//go:build !amd64

package shards

var useAVX2 = false

func unfilterRowAVX2(out, up, res []byte, plane, npx int, mirror bool) { panic("unreachable") }

func filterRowsAVX2(res, pix []byte, w, h, y0, y1, npx int) { panic("unreachable") }

func setAVX2(bool) {}
