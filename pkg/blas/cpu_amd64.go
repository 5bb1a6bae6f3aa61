package blas

import "golang.org/x/sys/cpu"

func hasAVX512() bool { return cpu.X86.HasAVX512F }
