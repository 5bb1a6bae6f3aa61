package shards

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels for the grad-zstd filter. Tests turn
// it off to check them against the pure-Go loops.
var useAVX2 = cpu.X86.HasAVX2

// unfilterRowAVX2 decodes npx pixels (a multiple of 32) of one row into
// out, reading npx bytes of each residual plane at res[0:], res[plane:] and
// res[2*plane:], and adding the 3*npx bytes of up unless up is empty (the
// first row). With mirror, pixel x goes to out[3*(npx-1-x):] instead, and
// up must be mirrored alike. It does no bounds checks: DecodeRows is the
// safe caller.
//
//go:noescape
func unfilterRowAVX2(out, up, res []byte, plane, npx int, mirror bool)

// filterRowsAVX2 is the inverse of unfilterRowsAVX2: it writes the residuals
// of pixels [0, npx) of rows [y0, y1) into the three planes of res, reading
// 3*npx bytes of pix per row (and of the row above). Surplus pixels past w
// write garbage into the next row of each plane, as above.
//
//go:noescape
func filterRowsAVX2(res, pix []byte, w, h, y0, y1, npx int)

// setAVX2 is for tests: it switches between the assembly and Go kernels.
func setAVX2(on bool) { useAVX2 = on && cpu.X86.HasAVX2 }
