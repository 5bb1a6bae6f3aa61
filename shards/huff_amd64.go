package shards

import "golang.org/x/sys/cpu"

// huffLoop is the fast loops' context; huff_amd64.s has the offsets.
type huffLoop struct {
	src, out *byte
	tbl      *uint32   // huffDecoder.multi
	off      [4]int64  // the window is the 8 bytes at src[off:] …
	used     [4]uint64 // … of which the top used bits are read: 1 to 63 (the end marker is one)
	pos      [4]int64  // next output byte
	lim      [4]int64  // a round may start while pos ≤ lim …
	low      [4]int64  // … and off ≥ low
}

// huffLoop4BMI2 runs the fast loop over all four streams while each has
// room, huffLoop2BMI2 over streams 0 and 1, and huffLoop1BMI2 over stream
// 0 alone. They need BMI2's SHLX, a
// shift by a register other than CL, and BMI1's TZCNT, which finds how
// many bits a window has given up from the marker bit below them.
//
//go:noescape
func huffLoop4BMI2(c *huffLoop)

//go:noescape
func huffLoop2BMI2(c *huffLoop)

//go:noescape
func huffLoop1BMI2(c *huffLoop)

// useHuffAsm selects the fast loops; without them huffDecoder decodes a
// symbol at a time, slower than huff0, so grad-huff goes through huff0.
var useHuffAsm = cpu.X86.HasBMI1 && cpu.X86.HasBMI2

// setHuffAsm is for tests.
func setHuffAsm(on bool) { useHuffAsm = on && cpu.X86.HasBMI1 && cpu.X86.HasBMI2 }
