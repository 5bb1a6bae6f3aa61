package cuda

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"
)

// cuDNN's graph ("backend") API, for convolutions only. The legacy API
// offers each pass eight or so fixed algorithms; on an H200 under TF32 the
// best of them ran conv3 of alexnet-owt at less than half PyTorch's speed
// (docs/gpu-machine.md), because PyTorch asks the graph API, whose
// heuristics rank many more engines (tensor-core implicit GEMMs among them)
// for the exact shape. The planner times the graph API's candidates beside
// the legacy algorithm it found and keeps whichever is faster, so this path
// can only make a plan faster; any failure in it leaves the legacy plan.
//
// The enumerations below are cudnn_graph.h's; TestBindingsAgainstHeaders
// checks each against the real header on a machine that has it.
const (
	// cudnnBackendDescriptorType_t
	bdConvolution     = 1
	bdEngine          = 2
	bdEngineCfg       = 3
	bdEngineHeur      = 4
	bdExecutionPlan   = 5
	bdOpConvForward   = 10
	bdOpConvBwdFilter = 11
	bdOpConvBwdData   = 12
	bdOperationGraph  = 15
	bdVariantPack     = 16
	bdTensor          = 17

	// cudnnBackendAttributeType_t
	btHandle            = 0
	btDataType          = 1
	btInt64             = 3
	btFloat             = 4
	btVoidPtr           = 6
	btConvolutionMode   = 7
	btHeurMode          = 8
	btNumericalNote     = 11
	btBackendDescriptor = 15
	btBehaviorNote      = 19

	// cudnnBackendAttributeName_t
	baConvCompType      = 100
	baConvMode          = 101
	baConvDilations     = 102
	baConvFilterStrides = 103
	baConvPostPaddings  = 104
	baConvPrePaddings   = 105
	baConvSpatialDims   = 106

	baHeurMode    = 200
	baHeurGraph   = 201
	baHeurResults = 202

	baCfgEngine = 300

	baPlanHandle    = 400
	baPlanEngineCfg = 401
	baPlanWorkspace = 402

	baFwdAlpha        = 700
	baFwdBeta         = 701
	baFwdConv         = 702
	baFwdW            = 703
	baFwdX            = 704
	baFwdY            = 705
	baBwdDataAlpha    = 706
	baBwdDataBeta     = 707
	baBwdDataConv     = 708
	baBwdDataW        = 709
	baBwdDataDX       = 710
	baBwdDataDY       = 711
	baBwdFilterAlpha  = 712
	baBwdFilterBeta   = 713
	baBwdFilterConv   = 714
	baBwdFilterDW     = 715
	baBwdFilterX      = 716
	baBwdFilterDY     = 717
	baGraphHandle     = 800
	baGraphOps        = 801
	baTensorAlignment = 900
	baTensorDataType  = 901
	baTensorDims      = 902
	baTensorStrides   = 903
	baTensorUID       = 906

	baPackUIDs      = 1000
	baPackPointers  = 1001
	baPackWorkspace = 1003

	baEngineGlobalIndex   = 1301
	baEngineNumericalNote = 1303
	baEngineBehaviorNote  = 1305

	// cudnnBackendHeurMode_t
	heurModeInstant  = 0
	heurModeFallback = 2
	heurModeA        = 3

	// cudnnBackendNumericalNote_t
	noteTensorCore        = 0
	noteDownConvertInputs = 1
	noteReducedPrecision  = 2
	noteFFT               = 3
	noteNondeterministic  = 4
	noteWinograd          = 5
	noteWinograd4x4       = 6
	noteWinograd6x6       = 7
	noteWinograd13x13     = 8
	noteStrictNaNProp     = 9

	// cudnnBackendBehaviorNote_t
	behaviorRuntimeCompilation = 0
)

var noteNames = map[int32]string{
	noteTensorCore: "tensor-core", noteDownConvertInputs: "down-convert", noteReducedPrecision: "reduced-precision",
	noteFFT: "fft", noteNondeterministic: "nondeterministic", noteWinograd: "winograd",
	noteWinograd4x4: "winograd-4x4", noteWinograd6x6: "winograd-6x6", noteWinograd13x13: "winograd-13x13",
	noteStrictNaNProp: "strict-nan",
}

// graphCandidates caps how many of the heuristics' engine configurations
// one pass keeps and times (those its notes allow, finalized in cuDNN's
// ranking until this many fit the budget): the first few hold the fast
// ones.
const graphCandidates = 8

// backend wraps the descriptor calls with the context current; errors name
// what was being done.
type backend struct{ n *DNN }

func (b backend) create(t int32) (uintptr, error) {
	var d uintptr
	err := b.n.do(func() int32 { return b.n.api.backendCreate(t, &d) }, "cudnnBackendCreateDescriptor(%d)", t)
	return d, err
}

func (b backend) destroy(ds ...uintptr) {
	for _, d := range ds {
		if d != 0 {
			_ = b.n.do(func() int32 { return b.n.api.backendDestroy(d) }, "cudnnBackendDestroyDescriptor")
		}
	}
}

func (b backend) finalize(d uintptr, what string) error {
	return b.n.do(func() int32 { return b.n.api.backendFinalize(d) }, "cudnnBackendFinalize(%s)", what)
}

// set passes count elements at p; cuDNN copies them before returning.
func (b backend) set(d uintptr, name, typ int32, count int, p unsafe.Pointer) error {
	return b.n.do(func() int32 { return b.n.api.backendSetAttribute(d, name, typ, int64(count), p) },
		"cudnnBackendSetAttribute(%d)", name)
}

func (b backend) setInt64s(d uintptr, name int32, v ...int64) error {
	return b.set(d, name, btInt64, len(v), unsafe.Pointer(&v[0]))
}

func (b backend) setDesc(d uintptr, name int32, v uintptr) error {
	return b.set(d, name, btBackendDescriptor, 1, unsafe.Pointer(&v))
}

func (b backend) get(d uintptr, name, typ int32, want int, got *int64, p unsafe.Pointer) error {
	return b.n.do(func() int32 { return b.n.api.backendGetAttribute(d, name, typ, int64(want), got, p) },
		"cudnnBackendGetAttribute(%d)", name)
}

// tensor makes a finalized float32 NCHW tensor descriptor.
func (b backend) tensor(uid int64, dims [4]int) (uintptr, error) {
	d, err := b.create(bdTensor)
	if err != nil {
		return 0, err
	}
	dt := int32(dnnDataFloat)
	dims64 := []int64{int64(dims[0]), int64(dims[1]), int64(dims[2]), int64(dims[3])}
	strides := []int64{dims64[1] * dims64[2] * dims64[3], dims64[2] * dims64[3], dims64[3], 1}
	align := int64(16)
	err = errors.Join(
		b.set(d, baTensorDataType, btDataType, 1, unsafe.Pointer(&dt)),
		b.setInt64s(d, baTensorDims, dims64...),
		b.setInt64s(d, baTensorStrides, strides...),
		b.setInt64s(d, baTensorUID, uid),
		b.setInt64s(d, baTensorAlignment, align),
	)
	if err == nil {
		err = b.finalize(d, "tensor")
	}
	if err != nil {
		b.destroy(d)
		return 0, err
	}
	return d, nil
}

// The tensors' unique ids within a pass's graph and variant pack.
const (
	uidX = 'x'
	uidW = 'w'
	uidY = 'y'
)

// graphPass is one pass of one convolution as a graph-API execution plan.
type graphPass struct {
	b         backend
	d         convDirection
	plan      uintptr
	workspace int64
	engine    int64
	cfg       uintptr     // the engine configuration the plan was made from
	owner     *graphOwner // the graph behind it
	notes     []int32
	runtime   bool // the engine compiles its kernel at run time

	// The variant pack binds device pointers to the tensors; a layer runs
	// on the same buffers every step, so the last one is kept.
	pack     uintptr
	packArgs [4]uintptr // x, w, y (or dx, dw, dy: same roles), workspace
}

func (g *graphPass) name() string {
	var notes []string
	for _, n := range g.notes {
		if s, ok := noteNames[n]; ok {
			notes = append(notes, s)
		} else {
			notes = append(notes, fmt.Sprintf("note%d", n))
		}
	}
	if g.runtime {
		notes = append(notes, "runtime-compiled")
	}
	s := fmt.Sprintf("engine %d", g.engine)
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, ",") + ")"
	}
	return s
}

func (g *graphPass) has(note int32) bool { return slices.Contains(g.notes, note) }

func (g *graphPass) close() {
	g.b.destroy(g.pack, g.plan, g.cfg)
	g.pack, g.plan, g.cfg = 0, 0, 0
	if g.owner != nil {
		g.owner.release()
		g.owner = nil
	}
}

// graphOwner holds a pass's operation graph and the descriptors it was
// built from while any plan made from them lives. cuDNN's documentation
// does not say that a finalized plan stands alone once they are
// destroyed (cudnn-frontend keeps them too), so they are kept.
type graphOwner struct {
	b     backend
	descs []uintptr
	refs  int
}

func (o *graphOwner) release() {
	if o.refs--; o.refs == 0 {
		o.b.destroy(o.descs...)
		o.descs = nil
	}
}

// run executes the plan on the handle's stream. x, w and y are the
// tensors in the graph's roles (for backward-data, x is dx and y is dy;
// for backward-filter, w is dw and y is dy).
func (g *graphPass) run(x, w, y DevicePtr, ws Buffer) error {
	if int64(ws.Bytes) < g.workspace {
		return fmt.Errorf("workspace of %d bytes, %s needs %d", ws.Bytes, g.name(), g.workspace)
	}
	args := [4]uintptr{uintptr(x), uintptr(w), uintptr(y), uintptr(ws.Ptr)}
	if g.pack == 0 || args != g.packArgs {
		g.b.destroy(g.pack)
		g.pack = 0
		p, err := g.b.create(bdVariantPack)
		if err != nil {
			return err
		}
		uids := []int64{uidX, uidW, uidY}
		ptrs := []uintptr{args[0], args[1], args[2]}
		wsp := args[3]
		err = errors.Join(
			g.b.setInt64s(p, baPackUIDs, uids...),
			g.b.set(p, baPackPointers, btVoidPtr, len(ptrs), unsafe.Pointer(&ptrs[0])),
			g.b.set(p, baPackWorkspace, btVoidPtr, 1, unsafe.Pointer(&wsp)),
		)
		if err == nil {
			err = g.b.finalize(p, "variant pack")
		}
		if err != nil {
			g.b.destroy(p)
			return err
		}
		g.pack, g.packArgs = p, args
	}
	n := g.b.n
	return n.do(func() int32 { return n.api.backendExecute(n.h, g.plan, g.pack) }, "cudnnBackendExecute(%s)", g.name())
}

// graphAllowed decides from an engine's notes and workspace whether a
// plan may use it.
func graphAllowed(g *graphPass, r algoRules) (bool, string) {
	if ok, why := notesAllowed(g, r); !ok {
		return ok, why
	}
	if g.workspace > r.budget {
		return false, fmt.Sprintf("needs %d bytes of workspace, budget %d", g.workspace, r.budget)
	}
	return true, ""
}

// notesAllowed is graphAllowed's judgement from the notes alone, known
// before an execution plan is finalized (which can cost milliseconds).
func notesAllowed(g *graphPass, r algoRules) (bool, string) {
	switch {
	case g.has(noteDownConvertInputs) || g.has(noteReducedPrecision):
		return false, "converts to lower precision"
	case r.deterministic && g.has(noteNondeterministic):
		return false, "non-deterministic"
	case r.strictFP32 && g.has(noteTensorCore):
		return false, "tensor cores (TF32) under fp32"
	case r.noTransforms && (g.has(noteFFT) || g.has(noteWinograd) || g.has(noteWinograd4x4) || g.has(noteWinograd6x6) || g.has(noteWinograd13x13)):
		return false, "FFT or Winograd refused"
	}
	return true, ""
}

// graphOp builds the finalized one-operation graph of pass d for shape s
// and returns it with the descriptors it was built from (the caller
// destroys them all, after every plan made from the graph).
func (b backend) graphOp(s ConvShape, d convDirection) (graph uintptr, owned []uintptr, err error) {
	n, k, p, q, err := s.Output()
	if err != nil {
		return 0, nil, err
	}
	defer func() {
		if err != nil {
			b.destroy(owned...)
			owned = nil
		}
	}()
	fk, fc, fr, fs := s.Filter()
	x, err := b.tensor(uidX, [4]int{s.N, s.C, s.H, s.W})
	if err != nil {
		return 0, owned, err
	}
	owned = append(owned, x)
	w, err := b.tensor(uidW, [4]int{fk, fc, fr, fs})
	if err != nil {
		return 0, owned, err
	}
	owned = append(owned, w)
	y, err := b.tensor(uidY, [4]int{n, k, p, q})
	if err != nil {
		return 0, owned, err
	}
	owned = append(owned, y)

	conv, err := b.create(bdConvolution)
	if err != nil {
		return 0, owned, err
	}
	owned = append(owned, conv)
	comp, mode := int32(dnnDataFloat), int32(dnnCrossCorrelation)
	err = errors.Join(
		b.set(conv, baConvCompType, btDataType, 1, unsafe.Pointer(&comp)),
		b.set(conv, baConvMode, btConvolutionMode, 1, unsafe.Pointer(&mode)),
		b.setInt64s(conv, baConvSpatialDims, 2),
		b.setInt64s(conv, baConvDilations, 1, 1),
		b.setInt64s(conv, baConvFilterStrides, int64(s.StrideH), int64(s.StrideW)),
		b.setInt64s(conv, baConvPrePaddings, int64(s.PadH), int64(s.PadW)),
		b.setInt64s(conv, baConvPostPaddings, int64(s.PadH), int64(s.PadW)),
	)
	if err == nil {
		err = b.finalize(conv, "convolution")
	}
	if err != nil {
		return 0, owned, err
	}

	var opType int32
	var attrs [6]int32 // alpha, beta, conv, then x, w, y in the graph's roles
	switch d {
	case dirForward:
		opType, attrs = bdOpConvForward, [6]int32{baFwdAlpha, baFwdBeta, baFwdConv, baFwdX, baFwdW, baFwdY}
	case dirBackwardData:
		opType, attrs = bdOpConvBwdData, [6]int32{baBwdDataAlpha, baBwdDataBeta, baBwdDataConv, baBwdDataDX, baBwdDataW, baBwdDataDY}
	default:
		opType, attrs = bdOpConvBwdFilter, [6]int32{baBwdFilterAlpha, baBwdFilterBeta, baBwdFilterConv, baBwdFilterX, baBwdFilterDW, baBwdFilterDY}
	}
	op, err := b.create(opType)
	if err != nil {
		return 0, owned, err
	}
	owned = append(owned, op)
	alpha, beta := float32(1), float32(0)
	err = errors.Join(
		b.set(op, attrs[0], btFloat, 1, unsafe.Pointer(&alpha)),
		b.set(op, attrs[1], btFloat, 1, unsafe.Pointer(&beta)),
		b.setDesc(op, attrs[2], conv),
		b.setDesc(op, attrs[3], x),
		b.setDesc(op, attrs[4], w),
		b.setDesc(op, attrs[5], y),
	)
	if err == nil {
		err = b.finalize(op, d.String()+" operation")
	}
	if err != nil {
		return 0, owned, err
	}

	g, err := b.create(bdOperationGraph)
	if err != nil {
		return 0, owned, err
	}
	h := b.n.h
	err = errors.Join(
		b.setDesc(g, baGraphOps, op),
		b.set(g, baGraphHandle, btHandle, 1, unsafe.Pointer(&h)),
	)
	if err == nil {
		err = b.finalize(g, "operation graph")
	}
	if err != nil {
		b.destroy(g)
		return 0, owned, err
	}
	return g, owned, nil
}

// engineConfigs returns the heuristics' ranked configurations for graph
// under mode, finalized by cuDNN; the caller destroys them.
func (b backend) engineConfigs(graph uintptr, mode int32) ([]uintptr, error) {
	heur, err := b.create(bdEngineHeur)
	if err != nil {
		return nil, err
	}
	defer b.destroy(heur)
	err = errors.Join(
		b.setDesc(heur, baHeurGraph, graph),
		b.set(heur, baHeurMode, btHeurMode, 1, unsafe.Pointer(&mode)),
	)
	if err == nil {
		err = b.finalize(heur, "engine heuristics")
	}
	if err != nil {
		return nil, err
	}
	var count int64
	if err := b.get(heur, baHeurResults, btBackendDescriptor, 0, &count, nil); err != nil {
		return nil, err
	}
	if count <= 0 {
		return nil, nil
	}
	count = min(count, 64)
	cfgs := make([]uintptr, count)
	for i := range cfgs {
		if cfgs[i], err = b.create(bdEngineCfg); err != nil {
			b.destroy(cfgs[:i]...)
			return nil, err
		}
	}
	var got int64
	if err := b.get(heur, baHeurResults, btBackendDescriptor, int(count), &got, unsafe.Pointer(&cfgs[0])); err != nil {
		b.destroy(cfgs...)
		return nil, err
	}
	if got < count {
		b.destroy(cfgs[got:]...)
		cfgs = cfgs[:max(got, 0)]
	}
	return cfgs, nil
}

// describe reads an engine configuration's engine: its global index, its
// numerical notes and whether it compiles at run time.
func (b backend) describe(cfg uintptr, g *graphPass) error {
	eng, err := b.create(bdEngine)
	if err != nil {
		return err
	}
	defer b.destroy(eng)
	var got int64
	if err := b.get(cfg, baCfgEngine, btBackendDescriptor, 1, &got, unsafe.Pointer(&eng)); err != nil {
		return err
	}
	if err := b.get(eng, baEngineGlobalIndex, btInt64, 1, &got, unsafe.Pointer(&g.engine)); err != nil {
		return err
	}
	notes := make([]int32, 16)
	if err := b.get(eng, baEngineNumericalNote, btNumericalNote, len(notes), &got, unsafe.Pointer(&notes[0])); err != nil {
		return err
	}
	g.notes = slices.Clone(notes[:min(max(got, 0), int64(len(notes)))])
	behave := make([]int32, 16)
	if err := b.get(eng, baEngineBehaviorNote, btBehaviorNote, len(behave), &got, unsafe.Pointer(&behave[0])); err == nil {
		g.runtime = slices.Contains(behave[:min(max(got, 0), int64(len(behave)))], behaviorRuntimeCompilation)
	}
	return nil
}

// graphPlans returns the usable execution plans of pass d, in the
// heuristics' order (mode A's, then the fallback list's), at most
// graphCandidates of them; why says what was refused and why.
func (pl *ConvPlan) graphPlans(d convDirection, r algoRules) (plans []*graphPass, why []string, err error) {
	a := pl.dnn.api
	if a.backendCreate == nil || a.backendExecute == nil {
		return nil, nil, fmt.Errorf("this cuDNN lacks the graph API")
	}
	b := backend{pl.dnn}
	graph, owned, err := b.graphOp(pl.Shape, d)
	if err != nil {
		return nil, nil, err
	}
	owner := &graphOwner{b: b, descs: append(owned, graph), refs: 1}
	defer owner.release()
	seen := map[string]bool{}
	for _, mode := range []int32{heurModeA, heurModeFallback} {
		cfgs, err := b.engineConfigs(graph, mode)
		if err != nil {
			why = append(why, fmt.Sprintf("heuristics mode %d: %v", mode, err))
			continue
		}
		for _, cfg := range cfgs {
			if len(plans) >= graphCandidates {
				break
			}
			g := &graphPass{b: b, d: d}
			if err := b.describe(cfg, g); err != nil {
				why = append(why, fmt.Sprintf("reading an engine: %v", err))
				continue
			}
			if g.runtime {
				// Finalizing compiles its kernel with NVRTC, seconds
				// per engine, and every Net build plans again; cuDNN's
				// plain convolutions are precompiled.
				why = append(why, g.name()+": compiled at run time")
				continue
			}
			if ok, reason := notesAllowed(g, r); !ok {
				why = append(why, fmt.Sprintf("%s: %s", g.name(), reason))
				continue
			}
			plan, err := b.create(bdExecutionPlan)
			if err != nil {
				why = append(why, err.Error())
				continue
			}
			h := pl.dnn.h
			err = errors.Join(
				b.set(plan, baPlanHandle, btHandle, 1, unsafe.Pointer(&h)),
				b.setDesc(plan, baPlanEngineCfg, cfg),
			)
			if err == nil {
				err = b.finalize(plan, "execution plan")
			}
			if err == nil {
				var got int64
				err = b.get(plan, baPlanWorkspace, btInt64, 1, &got, unsafe.Pointer(&g.workspace))
			}
			if err != nil {
				b.destroy(plan)
				why = append(why, fmt.Sprintf("%s: %v", g.name(), err))
				continue
			}
			g.plan = plan
			// Two configurations of one engine differ in their knobs;
			// the heuristics list the better first.
			key := fmt.Sprintf("%d/%d", g.engine, g.workspace)
			if ok, reason := graphAllowed(g, r); !ok || seen[key] {
				if !ok {
					why = append(why, fmt.Sprintf("%s: %s", g.name(), reason))
				}
				g.close()
				continue
			}
			seen[key] = true
			g.cfg, g.owner = cfg, owner
			owner.refs++
			plans = append(plans, g)
		}
		for _, cfg := range cfgs {
			if !slices.ContainsFunc(plans, func(g *graphPass) bool { return g.cfg == cfg }) {
				b.destroy(cfg)
			}
		}
	}
	return plans, why, nil
}

// graphTimedRuns is how many runs, after an untimed one, each
// candidate's time is the mean of.
const graphTimedRuns = 3

// timeGraph measures each candidate, and the legacy algorithm already
// chosen for pass d, on the gate's random inputs. It returns each
// candidate's time (NaN where it failed, the error noted) and the legacy
// algorithm's.
func (pl *ConvPlan) timeGraph(d convDirection, cands []*graphPass, sc *gateScratch) (times []float32, legacy float32, err error) {
	if err := sc.ensure(); err != nil {
		return nil, 0, err
	}
	dev := pl.dnn.dev
	need := pl.wsPerPass[d]
	for _, c := range cands {
		need = max(need, c.workspace)
	}
	ws, err := sc.workspace(need)
	if err != nil {
		return nil, 0, err
	}
	stream := pl.dnn.stream
	start, err := dev.NewEvent(true)
	if err != nil {
		return nil, 0, err
	}
	defer start.Destroy()
	end, err := dev.NewEvent(true)
	if err != nil {
		return nil, 0, err
	}
	defer end.Destroy()
	x, w, y, _ := sc.roles(d)
	measure := func(run func() error) (float32, error) {
		if err := run(); err != nil {
			return 0, err
		}
		if err := start.Record(stream); err != nil {
			return 0, err
		}
		for range graphTimedRuns {
			if err := run(); err != nil {
				return 0, err
			}
		}
		if err := end.Record(stream); err != nil {
			return 0, err
		}
		if err := end.Synchronize(); err != nil {
			return 0, err
		}
		ms, err := ElapsedMs(start, end)
		return ms / graphTimedRuns, err
	}
	legacy, err = measure(func() error {
		return pl.runLegacyAlgo(d, pl.convs[d], int32(pl.perf(d).Algo), x, w, y, ws)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("timing the legacy algorithm: %w", err)
	}
	times = make([]float32, len(cands))
	for i, c := range cands {
		ms, err := measure(func() error { return c.run(x, w, y, ws) })
		if err != nil {
			pl.note(d, "graph API %s: %v", c.name(), err)
			ms = float32(math.NaN())
		}
		times[i] = ms
	}
	return times, legacy, nil
}

// perf is the algorithm chosen for pass d.
func (pl *ConvPlan) perf(d convDirection) AlgoPerf { return *pl.perfOf(d) }

func (pl *ConvPlan) setPerf(d convDirection, p AlgoPerf) { *pl.perfOf(d) = p }

func (pl *ConvPlan) perfOf(d convDirection) *AlgoPerf {
	switch d {
	case dirForward:
		return &pl.Forward
	case dirBackwardData:
		return &pl.BackwardData
	}
	return &pl.BackwardFilter
}

// planGraph tries the graph API for pass d: the candidates faster than
// the legacy algorithm chosen, fastest first, go through the accuracy
// gate, and the first that passes replaces the legacy algorithm. Any
// failure is noted and leaves the legacy algorithm.
func (pl *ConvPlan) planGraph(d convDirection, r algoRules, sc *gateScratch) {
	cands, why, err := pl.graphPlans(d, r)
	if err != nil {
		pl.note(d, "graph API unusable: %v", err)
		return
	}
	defer func() {
		for _, c := range cands {
			if c != pl.graph[d] {
				c.close()
			}
		}
	}()
	if len(cands) == 0 {
		pl.note(d, "graph API: no usable engine (%s)", strings.Join(why, "; "))
		return
	}
	times, legacy, err := pl.timeGraph(d, cands, sc)
	if err != nil {
		pl.note(d, "graph API timing: %v", err)
		return
	}
	var report []string
	report = append(report, fmt.Sprintf("legacy %s %.3fms", pl.perf(d).Name, legacy))
	order := make([]int, 0, len(cands))
	for i, c := range cands {
		report = append(report, fmt.Sprintf("%s %.3fms", c.name(), times[i]))
		if times[i] < legacy { // false for NaN
			order = append(order, i)
		}
	}
	pl.note(d, "graph API: %s", strings.Join(report, ", "))
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(times[a], times[b]) })
	tol := gateTolerance(pl.Math)
	for _, i := range order {
		c := cands[i]
		e, err := sc.check(d, c.workspace, c.run)
		if err != nil {
			pl.note(d, "gate: %s: %v", c.name(), err)
			continue
		}
		if !(e <= tol) {
			pl.note(d, "gate: %s refused, error %.1e > %.0e", c.name(), e, tol)
			continue
		}
		// The scratch pointers must not stay in a kept plan's variant pack.
		c.b.destroy(c.pack)
		c.pack, c.packArgs = 0, [4]uintptr{}
		pl.graph[d] = c
		perf := AlgoPerf{Algo: int(c.engine), Name: c.name(), TimeMs: times[i], Memory: c.workspace,
			Deterministic: !c.has(noteNondeterministic), Graph: true, MathType: dnnFMAMath, GateErr: e}
		if c.has(noteTensorCore) {
			perf.MathType = dnnTensorOpMath
		}
		pl.wsPerPass[d] = c.workspace
		pl.setPerf(d, perf)
		return
	}
}
