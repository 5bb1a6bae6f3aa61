// Package cuda owns this project's bindings to NVIDIA's libraries: the
// CUDA driver (device, primary context, device and pinned host memory,
// streams, events, PTX modules and kernel launches), NVRTC (CUDA C++ to
// PTX at run time, with an on-disk PTX cache), cuBLAS (SGEMM) and cuDNN 9
// (convolution with per-shape algorithm search, pooling, LRN, activation,
// softmax, dropout, bias).
//
// # Loading
//
// Everything is loaded at run time with purego, so the package builds
// with CGO_ENABLED=0 and imports cleanly on machines without CUDA: nothing
// is opened until first use, and a missing library is an ordinary error
// (*NotFoundError) that lists every place searched. gorgonia.org/cu is
// deliberately not used; the design document (DESIGN.md) says why.
//
// Each library is looked for in $ALEXNET_CUDA_LIB (colon-separated
// folders), $LD_LIBRARY_PATH, the system loader, $CUDA_HOME/lib64 and
// $CUDA_PATH/lib64, /usr/local/cuda/lib64, the distribution's library
// folders, and, for cuBLAS, cuDNN and NVRTC, the nvidia/*/lib folders of
// Python site-packages (pip's nvidia-* wheels: nvidia/cu13/lib for CUDA
// 13, nvidia/cudnn/lib, ...). A library found by path in a folder the
// loader does not search has its siblings (cuBLASLt, nvrtc-builtins,
// cuDNN 9's sub-libraries) opened first from the same folder, so its own
// dlopen calls succeed without LD_LIBRARY_PATH. A library that opens is
// vetted before it is taken (its symbols bind, and it is built for a CUDA
// major the driver runs); one refused is closed with its siblings and the
// search goes on. A toolkit's stubs folder is never searched. Probe
// reports what was found.
//
// # Threads and contexts
//
// A CUDA context is current per OS thread, and goroutines migrate between
// threads. Every method here therefore locks the calling goroutine to its
// thread (runtime.LockOSThread, which nests) and makes the device's
// primary context current for the duration of the call, then unlocks. As
// a result a Device, and the Streams, Events, Modules and Buffers made
// from it, may be used from any goroutine. Code that calls CUDA libraries
// directly must do the same: Device.Bind does it.
//
// Handles with state are not safe for concurrent use: a BLAS or DNN handle
// carries its stream (and math mode), so use one per goroutine, as the
// libraries themselves require. Streams order the work queued on them;
// ordering across streams is the caller's, through Events.
//
// # Memory
//
// Device memory is a DevicePtr (a number to Go; the garbage collector
// neither sees nor frees it) with its size in a Buffer. Pinned host memory
// from HostAlloc is allocated by the driver outside the Go heap and must
// be released with HostFree. Asynchronous copies from or to it return at
// once; the caller must not touch the bytes until the stream has passed
// the copy. Copies from ordinary Go slices are staged by the driver and
// synchronous, so they are safe but slow.
//
// # Errors
//
// Every status is checked. A failure is an *Error naming the C function
// with its key arguments, the status's symbolic name and the library's
// description, for example
//
//	cuda: cuMemAlloc_v2(1073741824): CUDA_ERROR_OUT_OF_MEMORY: out of memory
//
// errors.Is(err, ErrOutOfMemory) holds for out-of-memory from any of the
// four libraries.
package cuda
