//go:build !amd64

package blas

func hasAVX512() bool { return false }
