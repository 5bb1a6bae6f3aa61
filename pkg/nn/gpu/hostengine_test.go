package gpu

import (
	"fmt"
	"math"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// hostEngine is the engine on the CPU: kernels.cu in the emulator, and
// what cuDNN and cuBLAS provide as naive loops written from their
// documented definitions (accumulating in float64), independent of
// pkg/nn/cpu's implementations, which the Net built on it is compared
// with.
type hostEngine struct {
	em  *emulator
	mem *hostMem
}

func newHostEngine(em *emulator) *hostEngine { return &hostEngine{em: em, mem: &hostMem{}} }

func (h *hostEngine) launch(name string, grid, block [3]uint32, args ...any) error {
	return h.em.launch(name, grid, block, args...)
}

func (h *hostEngine) alloc(bytes int) (cuda.DevicePtr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("alloc(%d)", bytes)
	}
	return h.mem.alloc(bytes), nil
}

func (h *hostEngine) upload(dst cuda.DevicePtr, src []byte) error {
	copy(h.mem.bytes(dst, len(src)), src)
	return nil
}

func (h *hostEngine) download(dst []byte, src cuda.DevicePtr) error {
	copy(dst, h.mem.bytes(src, len(dst)))
	return nil
}

func (h *hostEngine) copyDtoD(dst, src cuda.DevicePtr, bytes int) error {
	copy(h.mem.bytes(dst, bytes), h.mem.bytes(src, bytes))
	return nil
}

func (h *hostEngine) zero(dst cuda.DevicePtr, bytes int) error {
	clear(h.mem.bytes(dst, bytes))
	return nil
}

// gemm: C = op(A)·op(B) + beta·C, row-major.
func (h *hostEngine) gemm(transA, transB bool, m, n, k int, a cuda.DevicePtr, lda int, b cuda.DevicePtr, ldb int, beta float32, c cuda.DevicePtr, ldc int) error {
	rowsA, colsA, rowsB, colsB := m, k, k, n
	if transA {
		rowsA, colsA = k, m
	}
	if transB {
		rowsB, colsB = n, k
	}
	A, B, C := h.mem.f32(a, (rowsA-1)*lda+colsA), h.mem.f32(b, (rowsB-1)*ldb+colsB), h.mem.f32(c, (m-1)*ldc+n)
	at := func(i, p int) float32 {
		if transA {
			return A[p*lda+i]
		}
		return A[i*lda+p]
	}
	bt := func(p, j int) float32 {
		if transB {
			return B[j*ldb+p]
		}
		return B[p*ldb+j]
	}
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += float64(at(i, p)) * float64(bt(p, j))
			}
			if beta != 0 {
				s += float64(beta) * float64(C[i*ldc+j])
			}
			C[i*ldc+j] = float32(s)
		}
	}
	return nil
}

type hostConv struct {
	h          *hostEngine
	s          cuda.ConvShape
	p, q, g    int
	cg, kg     int  // channels per group in and out
	needDx     bool // as declared: the CUDA engine sizes the workspace by it
	xs, ws, ys int  // element counts
}

func (h *hostEngine) conv(s cuda.ConvShape, needDx bool) (convRun, error) {
	_, _, p, q, err := s.Output()
	if err != nil {
		return nil, err
	}
	g := max(1, s.Groups)
	c := &hostConv{h: h, s: s, p: p, q: q, g: g, cg: s.C / g, kg: s.K / g, needDx: needDx}
	c.xs, c.ws, c.ys = s.N*s.C*s.H*s.W, s.K*c.cg*s.R*s.S, s.N*s.K*p*q
	return c, nil
}

// each visits every (image, output channel, output pixel, input channel
// of the group, filter tap) that lands inside the input, with the flat
// indices of x, w and y.
func (c *hostConv) each(fn func(xi, wi, yi int)) {
	s := c.s
	st, pd := max(1, s.StrideH), s.PadH
	for n := range s.N {
		for k := range s.K {
			g := k / c.kg
			for oy := range c.p {
				for ox := range c.q {
					yi := ((n*s.K+k)*c.p+oy)*c.q + ox
					for cc := range c.cg {
						ci := g*c.cg + cc
						for r := range s.R {
							iy := oy*st - pd + r
							if iy < 0 || iy >= s.H {
								continue
							}
							for t := range s.S {
								ix := ox*st - pd + t
								if ix < 0 || ix >= s.W {
									continue
								}
								fn(((n*s.C+ci)*s.H+iy)*s.W+ix, ((k*c.cg+cc)*s.R+r)*s.S+t, yi)
							}
						}
					}
				}
			}
		}
	}
}

func (c *hostConv) forward(x, w, y cuda.DevicePtr) error {
	X, W, Y := c.h.mem.f32(x, c.xs), c.h.mem.f32(w, c.ws), c.h.mem.f32(y, c.ys)
	acc := make([]float64, c.ys)
	c.each(func(xi, wi, yi int) { acc[yi] += float64(X[xi]) * float64(W[wi]) })
	for i, v := range acc {
		Y[i] = float32(v)
	}
	return nil
}

func (c *hostConv) backwardData(w, dy, dx cuda.DevicePtr) error {
	if !c.needDx {
		return fmt.Errorf("host engine: backwardData on %v, declared as not needing it", c.s)
	}
	W, DY, DX := c.h.mem.f32(w, c.ws), c.h.mem.f32(dy, c.ys), c.h.mem.f32(dx, c.xs)
	acc := make([]float64, c.xs)
	c.each(func(xi, wi, yi int) { acc[xi] += float64(DY[yi]) * float64(W[wi]) })
	for i, v := range acc {
		DX[i] = float32(v)
	}
	return nil
}

func (c *hostConv) backwardFilter(x, dy, dw cuda.DevicePtr) error {
	X, DY, DW := c.h.mem.f32(x, c.xs), c.h.mem.f32(dy, c.ys), c.h.mem.f32(dw, c.ws)
	acc := make([]float64, c.ws)
	c.each(func(xi, wi, yi int) { acc[wi] += float64(DY[yi]) * float64(X[xi]) })
	for i, v := range acc {
		DW[i] = float32(v)
	}
	return nil
}

func (c *hostConv) backwardBias(dy, db cuda.DevicePtr) error {
	DY, DB := c.h.mem.f32(dy, c.ys), c.h.mem.f32(db, c.s.K)
	plane := c.p * c.q
	for k := range c.s.K {
		var s float64
		for n := range c.s.N {
			for _, v := range DY[(n*c.s.K+k)*plane : (n*c.s.K+k+1)*plane] {
				s += float64(v)
			}
		}
		DB[k] = float32(s)
	}
	return nil
}

// hostLRN is cuDNN's cross-channel LRN: y_c = x_c / s_c^β with
// s_c = K + (α/n)·Σ_{j in the n channels centred on c} x_j².
type hostLRN struct {
	h  *hostEngine
	in shape4
	p  alexnet.LRNParams
}

func (h *hostEngine) lrn(in shape4, p alexnet.LRNParams) (lrnRun, error) {
	return &hostLRN{h: h, in: in, p: p}, nil
}

// scales returns s_c for every element.
func (l *hostLRN) scales(X []float32) []float64 {
	in, half := l.in, l.p.Size/2
	plane := in.H * in.W
	s := make([]float64, len(X))
	for n := range in.N {
		for c := range in.C {
			for i := range plane {
				var sum float64
				for j := max(0, c-half); j <= min(in.C-1, c+half); j++ {
					v := float64(X[(n*in.C+j)*plane+i])
					sum += v * v
				}
				s[(n*in.C+c)*plane+i] = l.p.K + l.p.Alpha/float64(l.p.Size)*sum
			}
		}
	}
	return s
}

func (l *hostLRN) forward(x, y cuda.DevicePtr) error {
	size := int(l.in.elems())
	X, Y := l.h.mem.f32(x, size), l.h.mem.f32(y, size)
	for i, s := range l.scales(X) {
		Y[i] = float32(float64(X[i]) * math.Pow(s, -l.p.Beta))
	}
	return nil
}

// backward: dx_c = dy_c·s_c^−β − (2αβ/n)·x_c·Σ_{j: c in window(j)} dy_j·x_j·s_j^(−β−1).
func (l *hostLRN) backward(y, dy, x, dx cuda.DevicePtr) error {
	in, half := l.in, l.p.Size/2
	size := int(in.elems())
	X, DY, DX := l.h.mem.f32(x, size), l.h.mem.f32(dy, size), l.h.mem.f32(dx, size)
	s := l.scales(X)
	plane := in.H * in.W
	k := 2 * l.p.Alpha * l.p.Beta / float64(l.p.Size)
	for n := range in.N {
		for c := range in.C {
			for i := range plane {
				at := (n*in.C+c)*plane + i
				var sum float64
				for j := max(0, c-half); j <= min(in.C-1, c+half); j++ {
					aj := (n*in.C+j)*plane + i
					sum += float64(DY[aj]) * float64(X[aj]) * math.Pow(s[aj], -l.p.Beta-1)
				}
				DX[at] = float32(float64(DY[at])*math.Pow(s[at], -l.p.Beta) - k*float64(X[at])*sum)
			}
		}
	}
	return nil
}

// hostPool is max pooling; the first maximum of a window wins.
type hostPool struct {
	h              *hostEngine
	in, out        shape4
	k, stride, pad int
}

func (h *hostEngine) pool(in, out shape4, k, stride, pad int) (poolRun, error) {
	if p := cuda.PoolOutput(in.H, k, stride, pad); p != out.H {
		return nil, fmt.Errorf("pool %v: %d rows, the spec says %d", in, p, out.H)
	}
	return &hostPool{h: h, in: in, out: out, k: k, stride: stride, pad: pad}, nil
}

// windows visits every output with the flat indices of its window's
// inputs, in row-major order.
func (p *hostPool) windows(fn func(yi int, xs []int)) {
	in, out := p.in, p.out
	xs := make([]int, 0, p.k*p.k)
	for nc := range in.N * in.C {
		for oy := range out.H {
			for ox := range out.W {
				xs = xs[:0]
				for r := range p.k {
					iy := oy*p.stride - p.pad + r
					if iy < 0 || iy >= in.H {
						continue
					}
					for t := range p.k {
						ix := ox*p.stride - p.pad + t
						if ix < 0 || ix >= in.W {
							continue
						}
						xs = append(xs, (nc*in.H+iy)*in.W+ix)
					}
				}
				fn((nc*out.H+oy)*out.W+ox, xs)
			}
		}
	}
}

// argmax visits every output with the flat index of its input maximum.
func (p *hostPool) argmax(X []float32, fn func(yi, xi int)) {
	p.windows(func(yi int, xs []int) {
		best, bi := float32(math.Inf(-1)), -1
		for _, xi := range xs {
			if bi < 0 || X[xi] > best {
				best, bi = X[xi], xi
			}
		}
		fn(yi, bi)
	})
}

func (p *hostPool) forward(x, y cuda.DevicePtr) error {
	X, Y := p.h.mem.f32(x, int(p.in.elems())), p.h.mem.f32(y, int(p.out.elems()))
	p.argmax(X, func(yi, xi int) { Y[yi] = X[xi] })
	return nil
}

func (p *hostPool) backward(y, dy, x, dx cuda.DevicePtr) error {
	X, DY, DX := p.h.mem.f32(x, int(p.in.elems())), p.h.mem.f32(dy, int(p.out.elems())), p.h.mem.f32(dx, int(p.in.elems()))
	clear(DX)
	p.argmax(X, func(yi, xi int) { DX[xi] += DY[yi] })
	return nil
}

func (h *hostEngine) newTimer(points int) (stepTimer, error) { return newWallTimer(points), nil }
func (h *hostEngine) prepare() error                         { return nil }
func (h *hostEngine) sync() error                            { return nil }
func (h *hostEngine) describe() string                       { return "host engine (emulated kernels, naive layers)" }
func (h *hostEngine) close() error                           { h.mem.free(); return nil }

// wallTimer stamps with the host's clock, for engines whose calls have
// done their work when they return.
type wallTimer struct{ at []time.Time }

func newWallTimer(points int) *wallTimer { return &wallTimer{at: make([]time.Time, points)} }

func (t *wallTimer) stamp(i int) error { t.at[i] = time.Now(); return nil }

func (t *wallTimer) elapsedMs(i, j int) (float64, error) {
	return float64(t.at[j].Sub(t.at[i])) / float64(time.Millisecond), nil
}

func (t *wallTimer) close() error { return nil }
