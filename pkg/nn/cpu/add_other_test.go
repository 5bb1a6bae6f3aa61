//go:build !amd64

package cpu

var useAVX2 = false
