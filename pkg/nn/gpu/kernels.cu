// Kernels the GPU backend needs beyond cuDNN and cuBLAS. Compiled at run
// time by NVRTC (no headers: only built-in types and CUDA intrinsics), and
// in the tests by g++ through a small emulation header, so every kernel
// here is checked on the CPU against the Go reference before it ever runs
// on a GPU. Rules that keep both possible:
//
//   - extern "C", so names are not mangled and Go can look them up;
//   - block-level cooperation only through __shared__ arrays and
//     __syncthreads (no warp shuffles), which the emulator can schedule;
//   - float arithmetic that must match the CPU bit for bit is written
//     with __fadd_rn/__fsub_rn/__fmul_rn, which are never contracted into
//     FMAs (the module is also compiled with --fmad=false).
//
// Grids: elementwise kernels use grid-stride loops, so any grid size is
// correct and Go picks one that fills the GPU.

typedef unsigned long long u64;

// ---------------------------------------------------------------------
// Input: uint8 NHWC crops + per-crop lighting offsets -> float32 NCHW.
//
// The contract is augment's (see augment/doc.go): bias = offset - mean in
// float32, out = (float32(v) + bias) * scale, each step rounded to
// nearest; scale = float32(1/float64(std)) is computed by the host.
// One thread per pixel (3 channels).
extern "C" __global__ void normalize_u8(const unsigned char* __restrict__ px, const float* __restrict__ offsets,
                                        float* __restrict__ out, int n, int hw,
                                        float mean0, float mean1, float mean2,
                                        float scale0, float scale1, float scale2)
{
    // The host keeps n*hw below 2^31, so 32-bit index arithmetic (a GPU
    // divides 32-bit integers several times faster than 64-bit ones).
    unsigned total = (unsigned)n * (unsigned)hw;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        unsigned img = i / (unsigned)hw;
        unsigned p = i - img * (unsigned)hw;
        const unsigned char* s = px + (long long)i * 3;
        const float* off = offsets + img * 3;
        float* o = out + (long long)img * 3 * hw + p;
        o[0]      = __fmul_rn(__fadd_rn((float)s[0], __fsub_rn(off[0], mean0)), scale0);
        o[hw]     = __fmul_rn(__fadd_rn((float)s[1], __fsub_rn(off[1], mean1)), scale1);
        o[2 * hw] = __fmul_rn(__fadd_rn((float)s[2], __fsub_rn(off[2], mean2)), scale2);
    }
}

// ---------------------------------------------------------------------
// Bias (per channel of NCHW, or per column of [N, C] with hw = 1), with
// the following ReLU fused when relu != 0: one pass over y instead of two.
// ReLU keeps NaN (v < 0 is false for NaN), as Go's max(v, 0) does.
// total < 2^31 (checked by the host): 32-bit division.
extern "C" __global__ void bias_act(float* __restrict__ y, const float* __restrict__ b, int total, int c, int hw, int relu)
{
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)total; i += gridDim.x * blockDim.x) {
        unsigned ch = (i / (unsigned)hw) % (unsigned)c;
        float v = __fadd_rn(y[i], b[ch]);
        if (relu && v < 0.0f) v = 0.0f;
        y[i] = v;
    }
}

extern "C" __global__ void relu_fwd(const float* __restrict__ x, float* __restrict__ y, long long total)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = v < 0.0f ? 0.0f : v;
    }
}

// dx = dy where y > 0, else 0. dx may be dy (in place).
extern "C" __global__ void relu_bwd(const float* y, const float* dy, float* dx, long long total)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

// ---------------------------------------------------------------------
// Dropout with the CPU backend's masks. pkg/nn/cpu draws element i's mask
// at step t of a layer from math/rand/v2's PCG seeded (layerSeed, t): the
// (i+1)-th Uint64 u, dropped when Float64() = (u & (2^53-1)) / 2^53 < p,
// which is exactly (u & (2^53-1)) < ceil(p * 2^53) = threshold. The
// generator is a 128-bit LCG with a DXSM output, so a thread jumps straight
// to its first element (O(log i) steps) and then steps through a chunk.

struct u128 { u64 hi, lo; };

__device__ __forceinline__ u128 mul128(u128 a, u128 b)
{
    u128 r;
    r.lo = a.lo * b.lo;
    r.hi = __umul64hi(a.lo, b.lo) + a.hi * b.lo + a.lo * b.hi;
    return r;
}

__device__ __forceinline__ u128 add128(u128 a, u128 b)
{
    u128 r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo ? 1ULL : 0ULL);
    return r;
}

// Go's PCG constants (math/rand/v2/pcg.go).
__device__ __forceinline__ u128 pcg_mul() { u128 m; m.hi = 2549297995355413924ULL; m.lo = 4865540595714422341ULL; return m; }
__device__ __forceinline__ u128 pcg_inc() { u128 c; c.hi = 6364136223846793005ULL; c.lo = 1442695040888963407ULL; return c; }

// pcg_advance returns the state k steps after s: s_k = A^k s + C(A^{k-1} + ... + 1).
__device__ u128 pcg_advance(u128 s, u64 k)
{
    u128 accMul; accMul.hi = 0; accMul.lo = 1;
    u128 accAdd; accAdd.hi = 0; accAdd.lo = 0;
    u128 curMul = pcg_mul(), curAdd = pcg_inc();
    u128 one; one.hi = 0; one.lo = 1;
    while (k) {
        if (k & 1) {
            accMul = mul128(accMul, curMul);
            accAdd = add128(mul128(accAdd, curMul), curAdd);
        }
        curAdd = mul128(add128(curMul, one), curAdd);
        curMul = mul128(curMul, curMul);
        k >>= 1;
    }
    return add128(mul128(accMul, s), accAdd);
}

__device__ __forceinline__ u64 pcg_dxsm(u128 s)
{
    u64 hi = s.hi;
    hi ^= hi >> 32;
    hi *= 0xda942042e4dd58b5ULL;
    hi ^= hi >> 48;
    hi *= (s.lo | 1ULL);
    return hi;
}

// Each thread handles chunk consecutive elements. mask gets 1 for kept
// units; y = x * scale for kept ones and x * 0 for dropped ones, as the
// CPU's x * mask[i] with mask in {0, scale}.
extern "C" __global__ void dropout_fwd(const float* __restrict__ x, float* __restrict__ y, unsigned char* __restrict__ mask,
                                       long long total, u64 seed, u64 step, u64 threshold, float scale, int chunk)
{
    long long lo = (blockIdx.x * (long long)blockDim.x + threadIdx.x) * chunk;
    if (lo >= total) return;
    long long hi = lo + chunk < total ? lo + chunk : total;
    u128 s; s.hi = seed; s.lo = step;
    s = pcg_advance(s, (u64)lo);
    u128 m = pcg_mul(), c = pcg_inc();
    const u64 low53 = (1ULL << 53) - 1;
    for (long long i = lo; i < hi; i++) {
        s = add128(mul128(s, m), c);
        bool keep = (pcg_dxsm(s) & low53) >= threshold;
        mask[i] = keep ? 1 : 0;
        y[i] = __fmul_rn(x[i], keep ? scale : 0.0f);
    }
}

// y = x * s: the paper's dropout at evaluation, every unit times 1-p, as
// the CPU's v * s.
extern "C" __global__ void scale_fwd(const float* __restrict__ x, float* __restrict__ y, long long total, float s)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        y[i] = __fmul_rn(x[i], s);
    }
}

extern "C" __global__ void dropout_bwd(const float* __restrict__ dy, float* __restrict__ dx, const unsigned char* __restrict__ mask,
                                       long long total, float scale)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        dx[i] = __fmul_rn(dy[i], mask[i] ? scale : 0.0f);
    }
}

// ---------------------------------------------------------------------
// Softmax cross-entropy, as pkg/nn/cpu's loss: in double, through the
// row maximum. One block of XENT_THREADS threads per row (image).
// rowLoss = logsumexp(z) - z[label]; dz = (softmax(z) - onehot) * scale
// with scale = 1/N; rowHit = 1 when no logit exceeds the label's (ties
// count in the label's favour, as the CPU's topK). A label outside
// [0, k) gives a NaN loss instead of reading out of bounds.
#define XENT_THREADS 256

__device__ __forceinline__ double nan_double() { return __longlong_as_double(0x7ff8000000000000LL); }

extern "C" __global__ void xent_rows(const float* __restrict__ z, const int* __restrict__ labels, float* __restrict__ dz,
                                     double* __restrict__ rowLoss, int* __restrict__ rowHit, int k, double scale)
{
    __shared__ double red[XENT_THREADS];
    __shared__ int cnt[XENT_THREADS];
    int row = blockIdx.x, t = threadIdx.x, nt = blockDim.x;
    const float* zr = z + (long long)row * k;
    float* dr = dz + (long long)row * k;
    int lab = labels[row];
    bool ok = lab >= 0 && lab < k;

    double m = (double)zr[0];
    for (int j = t; j < k; j += nt) m = fmax(m, (double)zr[j]);
    red[t] = m;
    __syncthreads();
    for (int s = nt / 2; s > 0; s >>= 1) {
        if (t < s) red[t] = fmax(red[t], red[t + s]);
        __syncthreads();
    }
    m = red[0];
    __syncthreads();

    double sum = 0;
    float target = ok ? zr[lab] : 0.0f;
    int above = 0;
    for (int j = t; j < k; j += nt) {
        sum += exp((double)zr[j] - m);
        if (zr[j] > target) above++;
    }
    red[t] = sum;
    cnt[t] = above;
    __syncthreads();
    for (int s = nt / 2; s > 0; s >>= 1) {
        if (t < s) {
            red[t] += red[t + s];
            cnt[t] += cnt[t + s];
        }
        __syncthreads();
    }
    sum = red[0];
    for (int j = t; j < k; j += nt) {
        double p = exp((double)zr[j] - m) / sum;
        if (j == lab) p -= 1.0;
        dr[j] = (float)(p * scale);
    }
    if (t == 0) {
        rowLoss[row] = ok ? m + log(sum) - (double)target : nan_double();
        rowHit[row] = ok && cnt[0] == 0 ? 1 : 0;
    }
}

// Sums the rows in a fixed order: out[0] = mean loss, out[1] = hits.
// One block of XENT_THREADS threads.
extern "C" __global__ void xent_total(const double* __restrict__ rowLoss, const int* __restrict__ rowHit, int n, double* __restrict__ out)
{
    __shared__ double red[XENT_THREADS];
    __shared__ int cnt[XENT_THREADS];
    int t = threadIdx.x, nt = blockDim.x;
    double s = 0;
    int h = 0;
    for (int i = t; i < n; i += nt) {
        s += rowLoss[i];
        h += rowHit[i];
    }
    red[t] = s;
    cnt[t] = h;
    __syncthreads();
    for (int w = nt / 2; w > 0; w >>= 1) {
        if (t < w) {
            red[t] += red[t + w];
            cnt[t] += cnt[t + w];
        }
        __syncthreads();
    }
    if (t == 0) {
        out[0] = red[0] / n;
        out[1] = (double)cnt[0];
    }
}

// ---------------------------------------------------------------------
// Bias gradient of a fully connected layer: db[o] = sum over rows of
// dy[row, o]. One thread per column, rows in order.
extern "C" __global__ void bias_grad_rows(const float* __restrict__ dy, float* __restrict__ db, int n, int out)
{
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < out; o += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int r = 0; r < n; r++) s = __fadd_rn(s, dy[(long long)r * out + o]);
        db[o] = s;
    }
}

// ---------------------------------------------------------------------
// Bias gradient of a convolution: db[c] = sum over images and pixels of
// dy[n, c, p] (NCHW). cuDNN's cudnnConvolutionBackwardBias took longer
// than conv1's whole backward-filter pass on an H200 (docs/gpu-machine.md),
// so it is ours, in two deterministic passes (no atomics, a fixed order):
// block (c, s) of bias_grad_part sums channel c over images
// [s*per, min((s+1)*per, n)), each thread striding through those images'
// pixels as one run, then a tree in shared memory; bias_grad_sum adds each
// channel's partial sums in order. BIAS_THREADS must be a power of two.
#define BIAS_THREADS 256
extern "C" __global__ void bias_grad_part(const float* __restrict__ dy, float* __restrict__ part,
                                          int n, int c, int hw, int per)
{
    __shared__ float red[BIAS_THREADS];
    int ch = blockIdx.x;
    int n0 = blockIdx.y * per;
    int n1 = n0 + per < n ? n0 + per : n;
    float acc = 0.0f;
    int img = n0;
    int p = threadIdx.x;
    while (img < n1 && p >= hw) {
        p -= hw;
        img++;
    }
    while (img < n1) {
        acc = __fadd_rn(acc, dy[((long long)img * c + ch) * hw + p]);
        p += blockDim.x;
        while (img < n1 && p >= hw) {
            p -= hw;
            img++;
        }
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned w = BIAS_THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] = __fadd_rn(red[threadIdx.x], red[threadIdx.x + w]);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[ch * gridDim.y + blockIdx.y] = red[0];
}

extern "C" __global__ void bias_grad_sum(const float* __restrict__ part, float* __restrict__ db, int c, int splits)
{
    for (int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < splits; k++) s = __fadd_rn(s, part[ch * splits + k]);
        db[ch] = s;
    }
}

// ---------------------------------------------------------------------
// The paper's SGD step over every parameter at once (they are packed in
// one buffer), in the CPU's exact order of float32 operations:
//   v = ((mom*v) - (wdlr*w)) - (lr*g);  w = w + v
// with wdlr = wd*lr computed once by the host in float32, and 0 from
// element decayed on (the biases, packed after the weights, when they
// are spared weight decay; the CPU's wd is 0 for them then, and 0*lr*w
// is the same ±0 as 0*w).
extern "C" __global__ void sgd_paper(float* __restrict__ w, float* __restrict__ v, const float* __restrict__ g,
                                     long long total, long long decayed, float lr, float mom, float wdlr)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        float d = i < decayed ? wdlr : 0.0f;
        float nv = __fsub_rn(__fsub_rn(__fmul_rn(mom, v[i]), __fmul_rn(d, w[i])), __fmul_rn(lr, g[i]));
        v[i] = nv;
        w[i] = __fadd_rn(w[i], nv);
    }
}
