package alexnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// InitKind says how a parameter's initial values are drawn.
type InitKind string

// The initialisations a scheme can give a parameter.
const (
	Normal   InitKind = "normal"   // N(0, Std²)
	Constant InitKind = "constant" // every element Value
)

// Init is one parameter's initial distribution.
type Init struct {
	Kind  InitKind
	Std   float64
	Value float64
}

// ParamSpec describes one learnable tensor.
type ParamSpec struct {
	Name  string // "conv1.weight", "conv1.bias", ...
	Layer string // the owning layer's name
	Shape []int  // OIHW (I = in/groups) for conv weights, [out, in] for fc weights, [out] for biases
	FanIn int    // inputs feeding one output unit: (in/groups)·K·K or in
	Init  Init   // under the paper scheme; see Schemes for the others
	Bias  bool   // a layer's bias, which --bias-decay=false spares weight decay
}

// Size is the number of elements.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Params lists the spec's parameters in a fixed order (layer order,
// weight before bias), with the paper's initialisation: weights N(0, 0.01),
// biases the layer's BiasInit (1 in conv2, conv4, conv5, fc6, fc7). It
// returns nil for an invalid spec.
func (s Spec) Params() []ParamSpec {
	shapes, err := s.Shapes()
	if err != nil {
		return nil
	}
	var ps []ParamSpec
	for i, l := range s.Layers {
		in := s.inputOf(shapes, i)
		var w []int
		var fanIn int
		switch l.Kind {
		case Conv:
			fanIn = in.C / l.groups() * l.K * l.K
			w = []int{l.Out, in.C / l.groups(), l.K, l.K}
		case FC:
			fanIn = in.C
			w = []int{l.Out, in.C}
		default:
			continue
		}
		ps = append(ps,
			ParamSpec{Name: l.Name + ".weight", Layer: l.Name, Shape: w, FanIn: fanIn, Init: Init{Kind: Normal, Std: 0.01}},
			ParamSpec{Name: l.Name + ".bias", Layer: l.Name, Shape: []int{l.Out}, FanIn: fanIn, Init: Init{Kind: Constant, Value: l.BiasInit}, Bias: true},
		)
	}
	return ps
}

// HasDropout reports whether a layer drops units (Dropout with P > 0),
// the only layers PaperDropout changes.
func (s Spec) HasDropout() bool {
	for _, l := range s.Layers {
		if l.Kind == Dropout && l.P > 0 {
			return true
		}
	}
	return false
}

// NumParams is the total number of learnable scalars.
func (s Spec) NumParams() int {
	n := 0
	for _, p := range s.Params() {
		n += p.Size()
	}
	return n
}

// Schemes lists the initialisation schemes InitParams knows:
//
//   - "paper": weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6
//     and fc7, 0 elsewhere (each layer's BiasInit).
//   - "he": weights N(0, 2/fan_in) (Kaiming normal for ReLU), biases 0.
func Schemes() []string { return []string{"paper", "he"} }

// ParamsFor returns Params with each Init replaced by the scheme's
// ("" means the spec's InitScheme).
func (s Spec) ParamsFor(scheme string) ([]ParamSpec, error) {
	if scheme == "" {
		scheme = s.InitScheme
	}
	ps := s.Params()
	if ps == nil {
		_, err := s.Shapes()
		return nil, fmt.Errorf("alexnet: %w", err)
	}
	switch scheme {
	case "paper":
	case "he":
		for i := range ps {
			if len(ps[i].Shape) == 1 {
				ps[i].Init = Init{Kind: Constant}
			} else {
				ps[i].Init = Init{Kind: Normal, Std: math.Sqrt(2 / float64(ps[i].FanIn))}
			}
		}
	default:
		return nil, fmt.Errorf("alexnet: unknown init scheme %q (want one of %v)", scheme, Schemes())
	}
	return ps, nil
}

// InitParams draws every parameter of s under the scheme ("" for the
// spec's default). The result depends only on (s, scheme, seed): parameter
// i is drawn from its own PCG stream seeded (seed, i), so parameters are
// filled in parallel and adding a layer at the end leaves the others' values
// unchanged.
func InitParams(s Spec, scheme string, seed uint64) (map[string][]float32, error) {
	ps, err := s.ParamsFor(scheme)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]float32, len(ps))
	vals := make([][]float32, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		vals[i] = make([]float32, p.Size())
		wg.Add(1)
		go func(i int, p ParamSpec) {
			defer wg.Done()
			fill(vals[i], p.Init, rand.New(rand.NewPCG(seed, uint64(i))))
		}(i, p)
	}
	wg.Wait()
	for i, p := range ps {
		out[p.Name] = vals[i]
	}
	return out, nil
}

func fill(v []float32, in Init, r *rand.Rand) {
	switch in.Kind {
	case Normal:
		for j := range v {
			v[j] = float32(r.NormFloat64() * in.Std)
		}
	case Constant:
		c := float32(in.Value)
		for j := range v {
			v[j] = c
		}
	}
}
