//go:build !amd64

package imageio

var useAVX2 = false

func vertRowAVX2(out []uint8, src []uint8, stride int, w []int32) { panic("unreachable") }

func horizRowAVX2(out []uint8, row []uint8, offs []int32, w []int32, pairs int) {
	panic("unreachable")
}

func setAVX2(bool) {}
