package cuda

import (
	"fmt"
	"math"
)

// packArgs writes each kernel argument's value into its own 64-bit slot
// of dst, little-endian and zero-extended, which is what cuLaunchKernel
// reads through kernelParams[i]: it copies sizeof(parameter) bytes from
// that address. Every slot being 8-byte aligned satisfies the alignment
// of every scalar parameter type.
func packArgs(dst []uint64, args []any) error {
	if len(dst) < len(args) {
		return fmt.Errorf("packArgs: %d slots for %d arguments", len(dst), len(args))
	}
	for i, a := range args {
		var v uint64
		switch x := a.(type) {
		case DevicePtr:
			v = uint64(x)
		case Buffer:
			v = uint64(x.Ptr)
		case uintptr:
			v = uint64(x)
		case int32:
			v = uint64(uint32(x))
		case uint32:
			v = uint64(x)
		case int64:
			v = uint64(x)
		case uint64:
			v = x
		case float32:
			v = uint64(math.Float32bits(x))
		case float64:
			v = math.Float64bits(x)
		case int, uint:
			return fmt.Errorf("kernel argument %d is a Go %T, whose size C cannot know: convert to int32 (C int) or int64 (long long)", i, a)
		case nil:
			return fmt.Errorf("kernel argument %d is nil: pass DevicePtr(0) for a null pointer", i)
		default:
			return fmt.Errorf("kernel argument %d has type %T: want DevicePtr, Buffer, int32, uint32, int64, uint64, uintptr, float32 or float64", i, a)
		}
		dst[i] = v
	}
	return nil
}

// Launch limits every CUDA GPU since compute capability 3.0 shares.
const (
	maxBlockThreads = 1024
	maxBlockZ       = 64
	maxGridX        = 1<<31 - 1
	maxGridYZ       = 65535
)

// checkLaunchDims rejects shapes the driver would refuse, with a message
// that says which limit was broken rather than CUDA_ERROR_INVALID_VALUE.
func checkLaunchDims(grid, block [3]uint32) error {
	for i := range 3 {
		if grid[i] == 0 || block[i] == 0 {
			return fmt.Errorf("grid %v block %v: every dimension must be at least 1", grid, block)
		}
	}
	if t := uint64(block[0]) * uint64(block[1]) * uint64(block[2]); t > maxBlockThreads {
		return fmt.Errorf("block %v has %d threads, more than %d", block, t, maxBlockThreads)
	}
	if block[2] > maxBlockZ {
		return fmt.Errorf("block %v: z is %d, limit %d", block, block[2], maxBlockZ)
	}
	if grid[0] > maxGridX || grid[1] > maxGridYZ || grid[2] > maxGridYZ {
		return fmt.Errorf("grid %v exceeds %d×%d×%d", grid, maxGridX, maxGridYZ, maxGridYZ)
	}
	return nil
}

// GridFor returns the number of blocks of blockSize threads that cover n
// elements (at least 1), for one-dimensional launches.
func GridFor(n, blockSize int) uint32 {
	if n <= 0 || blockSize <= 0 {
		return 1
	}
	return uint32((n + blockSize - 1) / blockSize)
}
