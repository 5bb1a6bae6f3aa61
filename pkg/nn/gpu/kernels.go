package gpu

import (
	_ "embed"
	"fmt"
	"math"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// kernelSource is the CUDA C of every kernel the backend launches itself.
//
//go:embed kernels.cu
var kernelSource string

// kernelNames lists kernelSource's entry points; the module is checked to
// have each one when it loads.
var kernelNames = []string{
	"normalize_u8", "bias_act", "relu_fwd", "relu_bwd", "dropout_fwd", "dropout_bwd", "scale_fwd",
	"xent_rows", "xent_total", "bias_grad_rows", "bias_grad_part", "bias_grad_sum", "sgd_paper",
}

// nvrtcOptions: no contraction into FMAs anywhere, so kernels that mirror
// a CPU computation step by step round the same way.
var nvrtcOptions = []string{"--fmad=false"}

const (
	blockSize   = 256  // threads per block of the elementwise kernels
	maxBlocks   = 8192 // grid-stride loops cover the rest
	xentThreads = 256  // XENT_THREADS in kernels.cu
	biasThreads = 256  // BIAS_THREADS in kernels.cu
	// biasBlocks is about how many blocks bias_grad_part should have:
	// a few per SM of a large GPU, so that conv1's 64 or 96 channels
	// alone do not leave most of the SMs idle.
	biasBlocks   = 512
	dropoutChunk = 16 // consecutive elements per dropout thread (one PCG jump each)
)

// launcher runs one of kernelNames with a grid, a block and arguments,
// each an exact C type (see cuda.Function.Launch). The GPU engine queues
// it on the compute stream; the tests run it in an emulator on the CPU.
type launcher interface {
	launch(name string, grid, block [3]uint32, args ...any) error
}

func gridFor(n int64) [3]uint32 {
	b := (n + blockSize - 1) / blockSize
	return [3]uint32{uint32(min(max(b, 1), maxBlocks)), 1, 1}
}

var block1 = [3]uint32{blockSize, 1, 1}

// launchNormalize converts n crops of hw pixels (uint8 HWC at px, lighting
// offsets at offsets) into float32 NCHW at out, with augment's contract.
// scale is augment.Affine's, float32(1/float64(std)), never recomputed here.
func launchNormalize(l launcher, px, offsets, out cuda.DevicePtr, n, hw int, mean, scale [3]float32) error {
	if int64(n)*int64(hw) >= math.MaxInt32 {
		return fmt.Errorf("normalize: %d crops of %d pixels overflow the kernel's 32-bit index", n, hw)
	}
	return l.launch("normalize_u8", gridFor(int64(n)*int64(hw)), block1, px, offsets, out, int32(n), int32(hw),
		mean[0], mean[1], mean[2], scale[0], scale[1], scale[2])
}

// launchBiasAct adds b[c] to every element of channel c of y (total
// elements, c channels of hw each), then applies ReLU when relu is set.
func launchBiasAct(l launcher, y, b cuda.DevicePtr, total int64, c, hw int, relu bool) error {
	if total >= math.MaxInt32 {
		return fmt.Errorf("bias: %d elements overflow the kernel's 32-bit index", total)
	}
	r := int32(0)
	if relu {
		r = 1
	}
	return l.launch("bias_act", gridFor(total), block1, y, b, int32(total), int32(c), int32(hw), r)
}

func launchReLU(l launcher, x, y cuda.DevicePtr, total int64) error {
	return l.launch("relu_fwd", gridFor(total), block1, x, y, total)
}

func launchReLUBack(l launcher, y, dy, dx cuda.DevicePtr, total int64) error {
	return l.launch("relu_bwd", gridFor(total), block1, y, dy, dx, total)
}

// dropoutThreshold is the integer form of the CPU's test Float64() < p:
// a draw u is dropped when u's low 53 bits are below ceil(p·2⁵³).
func dropoutThreshold(p float64) uint64 { return uint64(math.Ceil(p * (1 << 53))) }

// dropoutScale is the CPU's kept-unit multiplier in training,
// float32(1/(1−p)), or 1 in the paper's form (alexnet.Spec.PaperDropout).
func dropoutScale(p float64, paper bool) float32 {
	if paper {
		return 1
	}
	return float32(1 / (1 - p))
}

// dropoutSeed is the seed pkg/nn/cpu gives the dropout layer at index i
// of the spec's layer list.
func dropoutSeed(seed uint64, i int) uint64 { return seed ^ (uint64(i+1) * 0x9E3779B97F4A7C15) }

func launchDropout(l launcher, x, y, mask cuda.DevicePtr, total int64, seed, step uint64, p float64, paper bool) error {
	threads := (total + dropoutChunk - 1) / dropoutChunk
	g := [3]uint32{uint32(max((threads+blockSize-1)/blockSize, 1)), 1, 1}
	return l.launch("dropout_fwd", g, block1, x, y, mask, total, seed, step, dropoutThreshold(p), dropoutScale(p, paper), int32(dropoutChunk))
}

func launchDropoutBack(l launcher, dy, dx, mask cuda.DevicePtr, total int64, p float64, paper bool) error {
	return l.launch("dropout_bwd", gridFor(total), block1, dy, dx, mask, total, dropoutScale(p, paper))
}

// launchScale: y = x·s, the paper's dropout at evaluation (s = 1−p).
func launchScale(l launcher, x, y cuda.DevicePtr, total int64, s float32) error {
	return l.launch("scale_fwd", gridFor(total), block1, x, y, total, s)
}

// launchXent computes, for logits z [n, k] and labels, the loss gradient
// dz (scaled by 1/n) and into out two doubles: the mean loss and the
// number of top-1 hits. rowLoss (n doubles) and rowHit (n int32) are
// scratch.
func launchXent(l launcher, z, labels, dz, rowLoss, rowHit, out cuda.DevicePtr, n, k int) error {
	if err := l.launch("xent_rows", [3]uint32{uint32(n), 1, 1}, [3]uint32{xentThreads, 1, 1},
		z, labels, dz, rowLoss, rowHit, int32(k), 1/float64(n)); err != nil {
		return err
	}
	return l.launch("xent_total", [3]uint32{1, 1, 1}, [3]uint32{xentThreads, 1, 1}, rowLoss, rowHit, int32(n), out)
}

func launchBiasGradRows(l launcher, dy, db cuda.DevicePtr, n, out int) error {
	return l.launch("bias_grad_rows", gridFor(int64(out)), block1, dy, db, int32(n), int32(out))
}

// biasSplits is how many groups of images bias_grad_part divides n into
// for c channels, and per how many images each holds.
func biasSplits(n, c int) (splits, per int) {
	splits = min(n, max(1, (biasBlocks+c-1)/c))
	per = (n + splits - 1) / splits
	return (n + per - 1) / per, per
}

// launchBiasGradNCHW sums dy [n, c, hw] over images and pixels into db
// [c]. part is scratch of c·biasSplits(n, c) floats.
func launchBiasGradNCHW(l launcher, dy, part, db cuda.DevicePtr, n, c, hw int) error {
	splits, per := biasSplits(n, c)
	if err := l.launch("bias_grad_part", [3]uint32{uint32(c), uint32(splits), 1}, [3]uint32{biasThreads, 1, 1},
		dy, part, int32(n), int32(c), int32(hw), int32(per)); err != nil {
		return err
	}
	return l.launch("bias_grad_sum", gridFor(int64(c)), block1, part, db, int32(c), int32(splits))
}

// launchSGD applies the paper's update to total packed parameters, the
// first decayed of them with weight decay and the rest without. wd·lr is
// formed here in float32, as the CPU's weightDecay*lr.
func launchSGD(l launcher, w, v, g cuda.DevicePtr, total, decayed int64, lr, momentum, weightDecay float32) error {
	wdlr := weightDecay * lr
	return l.launch("sgd_paper", gridFor(total), block1, w, v, g, total, decayed, lr, momentum, wdlr)
}
