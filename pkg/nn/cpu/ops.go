package cpu

import (
	"fmt"
	"hash"
	"hash/fnv"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opIDs makes every op's hash unique. gorgonia deduplicates nodes whose
// op hash and children agree (value numbering at compile time), which
// would merge two layers that happen to share geometry.
var opIDs atomic.Int64

// opBase carries what every op here has in common: a unique identity, no
// in-place tricks, no C calls as far as gorgonia's scheduler is concerned
// (our GEMMs run synchronously inside Do, so gorgonia must not batch or
// preallocate around them).
type opBase struct {
	id   int64
	name string
}

func newBase(name string) opBase { return opBase{id: opIDs.Add(1), name: name} }

func (o *opBase) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s#%d", o.name, o.id) }
func (o *opBase) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}
func (o *opBase) String() string       { return o.name }
func (o *opBase) ReturnsPtr() bool     { return false }
func (o *opBase) CallsExtern() bool    { return false }
func (o *opBase) OverwritesInput() int { return -1 }
func (o *opBase) DiffWRT(n int) []bool { return make([]bool, n) }
func (o *opBase) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%s: not differentiable", o.name)
}

// tt is the gorgonia type of a float32 tensor with d dimensions.
func tt(d int) hm.Type { return G.TensorType{Dims: d, Of: G.Float32} }

// buf is a float32 buffer that an op owns, with the tensor gorgonia sees.
// Ops return their own buffers from Do rather than fresh tensors, so a
// step allocates nothing; every op has its own register in the compiled
// program (none overwrites an input), so no other op writes into them.
type buf struct {
	data []float32
	t    *tensor.Dense
}

func newBuf(shape ...int) buf {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	return buf{data: data, t: tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))}
}

// f32s returns a gorgonia value's float32 elements.
func f32s(v G.Value, want int) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("expected a tensor, got %T", v)
	}
	d, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("expected float32 data, got %T", t.Data())
	}
	if want >= 0 && len(d) != want {
		return nil, fmt.Errorf("expected %d elements, got %d", want, len(d))
	}
	return d, nil
}

// pickOp hands on a tensor that another op computed as a side effect. A
// gorgonia op has one output, but a layer's backward pass produces the
// input, weight and bias gradients together; the backward op returns one
// and pickOps, depending on it, return the others.
type pickOp struct {
	opBase
	out  buf
	dims int
}

func newPick(name string, out buf) *pickOp {
	return &pickOp{opBase: newBase(name), out: out, dims: out.t.Dims()}
}

func (o *pickOp) Arity() int { return 1 }
func (o *pickOp) Type() hm.Type {
	return hm.NewFnType(hm.TypeVariable('a'), tt(o.dims))
}
func (o *pickOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.out.t.Shape().Clone(), nil
}
func (o *pickOp) Do(...G.Value) (G.Value, error) { return o.out.t, nil }

// forEach runs fn(worker, task) for every task in [0, n) on up to workers
// goroutines, handing tasks out as goroutines free up. worker identifies
// the goroutine (0 ≤ worker < workers) so fn can use per-worker scratch.
func forEach(workers, n int, fn func(worker, task int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for t := 0; t < n; t++ {
			fn(0, t)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[opPanic]
	wg.Add(workers)
	for w := range workers {
		go func() {
			defer wg.Done()
			defer catchWorker(&failed, &next, n)
			for {
				t := int(next.Add(1)) - 1
				if t >= n {
					return
				}
				fn(w, t)
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		panic(*p)
	}
}

// opPanic carries a panic out of a worker goroutine of forEach or
// parallel into the goroutine that called them, with the worker's stack.
type opPanic struct {
	val   any
	stack []byte
}

// catchWorker, deferred in a worker, keeps its panic (the first, if
// several) for the caller to raise again, and hands out no more tasks:
// a panic in a goroutine of its own would end the process, and no one
// could turn it into an error.
func catchWorker(failed *atomic.Pointer[opPanic], next *atomic.Int64, n int) {
	if r := recover(); r != nil {
		failed.CompareAndSwap(nil, &opPanic{val: r, stack: debug.Stack()})
		next.Store(int64(n))
	}
}

// recoverOp, deferred in every op's Do, turns a panic there (a bug here:
// a shape this package gets wrong) into the op's error, naming the op and
// keeping the stack. gorgonia runs the ops in a goroutine of its own, so a
// panic would otherwise end the process with Go's exit code 2 (which
// reads as a usage error) and no JSON, where the step can instead fail
// as a run does: a message and exit 1.
func recoverOp(name string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	stack := debug.Stack()
	if p, ok := r.(opPanic); ok {
		r, stack = p.val, p.stack
	}
	*err = fmt.Errorf("%s: internal error, please report it: %v\n%s", name, r, stack)
}

// parallel calls fn on consecutive blocks covering [0, n), from up to
// GOMAXPROCS goroutines. Blocks are handed out in order but run in any
// order, so fn must write disjoint outputs; results then do not depend on
// scheduling, which keeps training bit-reproducible. More blocks than
// workers even out the two cores' different speeds.
func parallel(n int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	blocks := min(n, 4*workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[opPanic]
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			defer catchWorker(&failed, &next, blocks)
			for {
				b := int(next.Add(1)) - 1
				if b >= blocks {
					return
				}
				fn(n*b/blocks, n*(b+1)/blocks)
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		panic(*p)
	}
}

// weightedGrads wires the backward of a layer with weights and biases: one
// node runs back (x, w, dy → dx) and leaves dw and db in the layer's
// buffers, and pick nodes hand those to the graph. dx is nil when the
// layer's input needs no gradient (the network's input).
func weightedGrads(name string, back G.Op, in G.Nodes, grad *G.Node, dwBuf, dbBuf buf, needDx bool) (G.Nodes, error) {
	b, err := G.ApplyOp(back, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(newPick(name+"_dw", dwBuf), b)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(newPick(name+"_db", dbBuf), b)
	if err != nil {
		return nil, err
	}
	dx := b
	if !needDx {
		dx = nil
	}
	return G.Nodes{dx, dw, db}, nil
}
