package cpu

import (
	"fmt"
	"runtime"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alexnet-repro/alexnet/pkg/blas"
)

// convGeom is one convolution's shape, per sample.
type convGeom struct {
	C, H, W    int // input
	O, K, S, P int // outputs, kernel, stride, padding
	Groups     int
	OH, OW     int
}

func (g convGeom) inSize() int  { return g.C * g.H * g.W }
func (g convGeom) outSize() int { return g.O * g.OH * g.OW }
func (g convGeom) plane() int   { return g.OH * g.OW }

// rows is the height of the im2col matrix: every input channel's K×K taps.
// Group gi owns rows [gi·rows/Groups, (gi+1)·rows/Groups), because rows
// are ordered channel-major.
func (g convGeom) rows() int { return g.C * g.K * g.K }

// validRange returns the output columns [lo, hi) whose tap at kernel
// offset kj reads inside an input row of width w.
func validRange(kj, s, p, w, outW int) (lo, hi int) {
	if d := p - kj; d > 0 {
		lo = (d + s - 1) / s
	}
	if num := w - 1 + p - kj; num >= 0 {
		hi = min(num/s+1, outW)
	}
	lo = min(lo, outW)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// same reports a stride-1 convolution whose output is as large as its
// input (K = 2P+1: every stride-1 layer here). Then one kernel tap's
// column block is the input plane shifted by a constant offset, so im2col
// and col2im move whole planes instead of output rows.
func (g convGeom) same() bool { return g.S == 1 && g.OH == g.H && g.OW == g.W }

// tapRows returns the output rows [oy0, oy1) whose input row for tap ki
// lies inside the input.
func (g convGeom) tapRows(ki int) (oy0, oy1 int) {
	oy0 = min(g.OH, max(0, g.P-ki))
	oy1 = max(oy0, min(g.OH, g.H+g.P-ki))
	return oy0, oy1
}

// im2col writes channel c of one sample x into K·K rows of col, at
// columns [off, off+OH·OW) of rows with stride ld; padding reads as zero.
func (g convGeom) im2col(x []float32, c int, col []float32, ld, off int) {
	xc := x[c*g.H*g.W : (c+1)*g.H*g.W]
	p := g.plane()
	for ki := 0; ki < g.K; ki++ {
		for kj := 0; kj < g.K; kj++ {
			r := (c*g.K+ki)*g.K + kj
			dst := col[r*ld+off : r*ld+off+p]
			lo, hi := validRange(kj, g.S, g.P, g.W, g.OW)
			if g.same() {
				g.shiftPlane(xc, dst, ki, kj, lo, hi)
				continue
			}
			for oy := 0; oy < g.OH; oy++ {
				row := dst[oy*g.OW : (oy+1)*g.OW]
				iy := oy*g.S - g.P + ki
				if iy < 0 || iy >= g.H {
					clear(row)
					continue
				}
				src := xc[iy*g.W : (iy+1)*g.W]
				zeroOutside(row, lo, hi)
				base := kj - g.P
				if g.S == 1 {
					if lo < hi { // else lo+base may be below 0: a tap wholly in the padding
						copy(row[lo:hi], src[lo+base:hi+base])
					}
				} else {
					for ox := lo; ox < hi; ox++ {
						row[ox] = src[ox*g.S+base]
					}
				}
			}
		}
	}
}

// zeroOutside clears row outside [lo, hi), without calling memclr for the
// one or two elements a padded edge usually has.
func zeroOutside(row []float32, lo, hi int) {
	for i := range row[:lo] {
		row[i] = 0
	}
	for i := range row[hi:] {
		row[hi+i] = 0
	}
}

// shiftPlane is im2col of one tap for a same convolution: copy the input
// plane shifted by (ki−P)·W + (kj−P) in one move, then zero what fell
// outside the input: whole rows above and below, and the columns that
// wrapped around from the neighbouring row.
func (g convGeom) shiftPlane(xc, dst []float32, ki, kj, lo, hi int) {
	w := g.W
	oy0, oy1 := g.tapRows(ki)
	if oy1 == oy0 || lo >= hi {
		// The tap reads only padding (on a map narrower than the
		// kernel's reach, a 1×1 map say): the shifted copy would start
		// before the plane.
		clear(dst)
		return
	}
	clear(dst[:oy0*w])
	clear(dst[oy1*w:])
	shift := (ki-g.P)*w + kj - g.P
	a, b := oy0*w+lo, (oy1-1)*w+hi
	copy(dst[a:b], xc[a+shift:b+shift])
	for oy := oy0; oy < oy1; oy++ {
		zeroOutside(dst[oy*w:(oy+1)*w], lo, hi)
	}
}

// col2im adds K·K rows of col back into channel c of one sample's input
// gradient dx (the transpose of im2col). For a same convolution it first
// zeroes the wrapped columns of col (scratch by then) so that each tap is
// one contiguous add.
func (g convGeom) col2im(col []float32, ld, off int, dx []float32, c int) {
	dc := dx[c*g.H*g.W : (c+1)*g.H*g.W]
	p := g.plane()
	for ki := 0; ki < g.K; ki++ {
		for kj := 0; kj < g.K; kj++ {
			r := (c*g.K+ki)*g.K + kj
			src := col[r*ld+off : r*ld+off+p]
			lo, hi := validRange(kj, g.S, g.P, g.W, g.OW)
			if g.same() {
				oy0, oy1 := g.tapRows(ki)
				if oy1 == oy0 || lo >= hi {
					continue // only padding: nothing flows back
				}
				for oy := oy0; oy < oy1; oy++ {
					zeroOutside(src[oy*g.W:(oy+1)*g.W], lo, hi)
				}
				shift := (ki-g.P)*g.W + kj - g.P
				a, b := oy0*g.W+lo, (oy1-1)*g.W+hi
				addTo(dc[a+shift:b+shift], src[a:b])
				continue
			}
			for oy := 0; oy < g.OH; oy++ {
				iy := oy*g.S - g.P + ki
				if iy < 0 || iy >= g.H {
					continue
				}
				row := src[oy*g.OW : (oy+1)*g.OW]
				dst := dc[iy*g.W : (iy+1)*g.W]
				base := kj - g.P
				if g.S == 1 {
					if lo < hi {
						addTo(dst[lo+base:hi+base], row[lo:hi])
					}
				} else {
					for ox := lo; ox < hi; ox++ {
						dst[ox*g.S+base] += row[ox]
					}
				}
			}
		}
	}
}

// workspace is scratch shared by every convolution of one Net: a column
// buffer and a product matrix per worker goroutine. The tape machine runs
// one op at a time, so all layers share them.
type workspace struct {
	workers  int
	col, mat [][]float32
}

func newWorkspace() *workspace {
	w := runtime.GOMAXPROCS(0)
	return &workspace{workers: w, col: make([][]float32, w), mat: make([][]float32, w)}
}

func (ws *workspace) reserve(cols, mats int) {
	for i := range ws.workers {
		if len(ws.col[i]) < cols {
			ws.col[i] = make([]float32, cols)
		}
		if len(ws.mat[i]) < mats {
			ws.mat[i] = make([]float32, mats)
		}
	}
}

// Chunking: a GEMM covers a chunk of samples, wide enough (minCols output
// positions) to run near peak single-threaded, and its column matrix stays
// under colLimit floats. AlexNet's conv1 and conv2 take one sample per
// chunk, conv3–5 three.
const (
	minCols  = 384
	colLimit = 1 << 22
)

// accGroups is how many partial weight gradients backward sums. Chunks are
// dealt to groups in order and each group sums its chunks in order, so the
// result depends neither on scheduling nor on the number of cores.
const accGroups = 8

// convLayer is one convolution: geometry, the batch's buffers, and the
// kernels that fill them. Each chunk of samples is one task for one
// goroutine: im2col, a single-threaded GEMM per group, and the scatter to
// NCHW all stay on that core.
type convLayer struct {
	g      convGeom
	n      int  // batch
	chunk  int  // samples per GEMM
	needDx bool // false for the first layer: nothing upstream wants dx
	ws     *workspace

	y, dx, dw, db buf
	dwPart        [][]float32 // per accumulation group
}

func newConvLayer(g convGeom, n int, needDx bool, ws *workspace) *convLayer {
	l := &convLayer{g: g, n: n, needDx: needDx, ws: ws}
	want := (minCols + g.plane() - 1) / g.plane()
	limit := colLimit / (g.rows() * g.plane())
	l.setChunk(max(1, min(n, want, limit)))
	l.y = newBuf(n, g.O, g.OH, g.OW)
	if needDx {
		l.dx = newBuf(n, g.C, g.H, g.W)
	} else {
		l.dx = newBuf(1)
	}
	l.dw = newBuf(g.O, g.C/g.Groups, g.K, g.K)
	l.db = newBuf(g.O)
	return l
}

// setChunk fixes the samples per chunk and sizes the scratch for it.
func (l *convLayer) setChunk(c int) {
	l.chunk = c
	g := l.g
	l.ws.reserve(g.rows()*c*g.plane(), g.O*c*g.plane())
	l.dwPart = make([][]float32, min(accGroups, l.chunks()))
	for i := range l.dwPart {
		l.dwPart[i] = make([]float32, g.O*g.rows()/g.Groups)
	}
}

func (l *convLayer) chunks() int { return (l.n + l.chunk - 1) / l.chunk }

// columns fills the worker's column buffer with im2col of samples
// [n0, n0+cnt) and returns it.
func (l *convLayer) columns(worker int, x []float32, n0, cnt int) []float32 {
	g := l.g
	ld := cnt * g.plane()
	col := l.ws.col[worker][:g.rows()*ld]
	for s := 0; s < cnt; s++ {
		xs := x[(n0+s)*g.inSize() : (n0+s+1)*g.inSize()]
		for c := 0; c < g.C; c++ {
			g.im2col(xs, c, col, ld, s*g.plane())
		}
	}
	return col
}

// forward computes y = conv(x, w) + b. Per chunk: im2col, one GEMM per
// group (weights × columns) into [O, samples·OH·OW], then the scatter into
// NCHW with the bias. A one-sample chunk's product is already NCHW, so the
// GEMM writes y directly.
func (l *convLayer) forward(x, w, b []float32) {
	g := l.g
	og, kg := g.O/g.Groups, g.rows()/g.Groups
	p := g.plane()
	forEach(l.ws.workers, l.chunks(), func(worker, ci int) {
		n0 := ci * l.chunk
		cnt := min(l.chunk, l.n-n0)
		ld := cnt * p
		col := l.columns(worker, x, n0, cnt)
		y := l.y.data[n0*g.outSize() : (n0+cnt)*g.outSize()]
		mat := y
		if cnt > 1 {
			mat = l.ws.mat[worker][:g.O*ld]
		}
		for gi := 0; gi < g.Groups; gi++ {
			blas.Sgemm(false, false, og, ld, kg, 1, w[gi*og*kg:], kg, col[gi*kg*ld:], ld, 0, mat[gi*og*ld:], ld)
		}
		for s := 0; s < cnt; s++ {
			for o := 0; o < g.O; o++ {
				src := mat[o*ld+s*p : o*ld+(s+1)*p]
				dst := y[s*g.outSize()+o*p : s*g.outSize()+(o+1)*p]
				bo := b[o]
				for i, v := range src {
					dst[i] = v + bo
				}
			}
		}
	})
}

// backward computes db, dw and (when needed) dx from dy. Per chunk: gather
// dy into [O, samples·OH·OW] (one-sample chunks use dy in place), recompute
// the columns, add dy·colsᵀ to the group's partial dw, then cols = wᵀ·dy
// and col2im into dx. Recomputing into the worker's cache-warm scratch
// beats keeping forward's: keeping all of small's columns (170 MB at batch
// 128) made its step about 10% slower on the 2-core VM (median of 4
// interleaved pairs, 2026-11-28), as they make a round trip through memory.
func (l *convLayer) backward(x, w, dy []float32) {
	g := l.g
	og, kg := g.O/g.Groups, g.rows()/g.Groups
	p := g.plane()
	db := l.db.data
	parallel(g.O, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			var s float64
			for n := 0; n < l.n; n++ {
				var sn float32
				for _, v := range dy[n*g.outSize()+o*p : n*g.outSize()+(o+1)*p] {
					sn += v
				}
				s += float64(sn)
			}
			db[o] = float32(s)
		}
	})
	chunks, groups := l.chunks(), len(l.dwPart)
	forEach(l.ws.workers, groups, func(worker, gr int) {
		part := l.dwPart[gr]
		for ci := gr * chunks / groups; ci < (gr+1)*chunks/groups; ci++ {
			first := ci == gr*chunks/groups
			n0 := ci * l.chunk
			cnt := min(l.chunk, l.n-n0)
			ld := cnt * p
			dyc := dy[n0*g.outSize() : (n0+cnt)*g.outSize()]
			mat := dyc
			if cnt > 1 {
				mat = l.ws.mat[worker][:g.O*ld]
				for s := 0; s < cnt; s++ {
					for o := 0; o < g.O; o++ {
						copy(mat[o*ld+s*p:o*ld+(s+1)*p], dyc[s*g.outSize()+o*p:s*g.outSize()+(o+1)*p])
					}
				}
			}
			col := l.columns(worker, x, n0, cnt)
			beta := float32(1)
			if first {
				beta = 0
			}
			for gi := 0; gi < g.Groups; gi++ {
				blas.Sgemm(false, true, og, kg, ld, 1, mat[gi*og*ld:], ld, col[gi*kg*ld:], ld, beta, part[gi*og*kg:], kg)
			}
			if !l.needDx {
				continue
			}
			for gi := 0; gi < g.Groups; gi++ {
				blas.Sgemm(true, false, kg, ld, og, 1, w[gi*og*kg:], kg, mat[gi*og*ld:], ld, 0, col[gi*kg*ld:], ld)
			}
			dx := l.dx.data[n0*g.inSize() : (n0+cnt)*g.inSize()]
			clear(dx)
			for s := 0; s < cnt; s++ {
				for c := 0; c < g.C; c++ {
					g.col2im(col, ld, s*p, dx[s*g.inSize():(s+1)*g.inSize()], c)
				}
			}
		}
	})
	dw := l.dw.data
	elementwise(len(dw), func(lo, hi int) {
		copy(dw[lo:hi], l.dwPart[0][lo:hi])
		for _, part := range l.dwPart[1:] {
			for i := lo; i < hi; i++ {
				dw[i] += part[i]
			}
		}
	})
}

// convOp is the forward node: (x, w, b) → y.
// inputs unpacks (x, w, third) for the forward (third: the bias) and
// backward (third: dy) ops, naming what is wrong.
func (l *convLayer) inputs(name string, in []G.Value, third string, thirdLen int) (x, w, t []float32, err error) {
	if x, err = f32s(in[0], l.n*l.g.inSize()); err != nil {
		return nil, nil, nil, fmt.Errorf("%s input: %w", name, err)
	}
	if w, err = f32s(in[1], len(l.dw.data)); err != nil {
		return nil, nil, nil, fmt.Errorf("%s weight: %w", name, err)
	}
	if t, err = f32s(in[2], thirdLen); err != nil {
		return nil, nil, nil, fmt.Errorf("%s %s: %w", name, third, err)
	}
	return x, w, t, nil
}

type convOp struct {
	opBase
	l *convLayer
}

func (o *convOp) Arity() int    { return 3 }
func (o *convOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4), tt(1), tt(4)) }
func (o *convOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.y.t.Shape().Clone(), nil
}
func (o *convOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, w, b, err := o.l.inputs(o.name, in, "bias", o.l.g.O)
	if err != nil {
		return nil, err
	}
	o.l.forward(x, w, b)
	return o.l.y.t, nil
}
func (o *convOp) DiffWRT(int) []bool { return []bool{o.l.needDx, true, true} }
func (o *convOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return weightedGrads(o.name, &convBackOp{opBase: newBase(o.name + "_back"), l: o.l}, in, grad, o.l.dw, o.l.db, o.l.needDx)
}

// convBackOp is the backward node: (x, w, dy) → dx, with dw and db left in
// the layer for pickOps.
type convBackOp struct {
	opBase
	l *convLayer
}

func (o *convBackOp) Arity() int    { return 3 }
func (o *convBackOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4), tt(4), tt(o.l.dx.t.Dims())) }
func (o *convBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.dx.t.Shape().Clone(), nil
}
func (o *convBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, w, dy, err := o.l.inputs(o.name, in, "output gradient", len(o.l.y.data))
	if err != nil {
		return nil, err
	}
	o.l.backward(x, w, dy)
	return o.l.dx.t, nil
}
