// Package gpu is the GPU training backend: the same alexnet.Spec as
// pkg/nn/cpu, built from cuDNN (grouped convolutions with algorithms
// chosen by cudnnFind under a workspace budget taken from free memory,
// LRN, max pooling), cuBLAS (fully connected layers) and kernels of its
// own, CUDA C in kernels.cu compiled by NVRTC at start-up and cached on
// disk: uint8 NHWC → float32 NCHW normalisation with lighting offsets
// (augment's contract, bit for bit), bias with a fused ReLU, dropout,
// softmax cross-entropy with its gradient and the loss and top-1
// reduction, and the paper's SGD update over all parameters in one launch.
//
// # Matching the CPU backend
//
// The GPU backend computes what pkg/nn/cpu computes, so that one checks
// the other and a run can move between them:
//   - the loss is the mean softmax cross-entropy in double precision, its
//     gradient (softmax − onehot)/N, top-1 counting ties in the label's
//     favour;
//   - dropout masks are the CPU's exactly: the kernel jumps math/rand/v2's
//     PCG, seeded (seed ^ (layer+1)·0x9E3779B97F4A7C15, step), to each
//     element's draw, so training with dropout on can be cross-checked
//     and a resumed run draws the masks the uninterrupted run would;
//   - the SGD update performs the CPU's float32 operations in the CPU's
//     order, without FMA contraction, so equal gradients give equal
//     parameters bit for bit;
//   - parameters have the names, shapes and order of spec.Params(), and
//     Backend.Tensors reads them back for checkpoints, which are the same
//     file on both devices; reading them costs one download and nothing
//     afterwards, and a resume uploads its momenta with SetMomenta.
//
// Precision is TF32 by default (cuDNN's default math and cuBLAS's TF32
// mode, as PyTorch does for convolutions) or strict FP32.
//
// # Ownership, streams and goroutines
//
// A Net owns, in device memory, the packed parameters, momenta and
// gradients (one buffer each, every tensor 256-byte aligned), every
// layer's activation and gradient, the workspace shared by all
// convolutions, and a staging buffer for batches that arrive as pipeline
// slots. All of its work is queued on one compute stream with one cuBLAS
// and one cuDNN handle bound to it; it starts no goroutines and is not
// safe for concurrent use. The host waits only to read results: Backend's
// Step queues the whole step and then waits once for the loss;
// StepLoaded returns a Pending so the next step can be queued first.
//
// Batches reach the device in two ways. Backend.Step (trainer.Backend)
// copies a slot itself, after the previous step: simple, no overlap.
// pkg/feed's double buffer copies batch n+1 on its own stream while step
// n runs; the Net then only Loads the device batch (see StepFeed). The
// Backend is a trainer.Streamer, so trainer.Train takes the second way:
// page-locked slots, the feed, and one step queued ahead of the loop.
//
// # Testing without a GPU
//
// The Net talks to the device through an internal engine interface. The
// tests provide a host engine that runs kernels.cu itself, compiled by
// g++ with a small emulation header (cooperative threads for
// __syncthreads, exact float intrinsics), and cuDNN's and cuBLAS's layers
// as naive loops, and check the whole Net against pkg/nn/cpu: logits,
// loss, every gradient and the parameters after an update. The tests
// named TestGPU* run the real thing and skip without a driver
// (ALEXNET_REQUIRE_GPU=1 turns the skips into failures).
package gpu
