package cpu

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// These tests tie the native ops to gorgonia's own layers (where those are
// right), so the CPU backend computes what a plain gorgonia graph would.

func runGorgonia(t *testing.T, build func(g *G.ExprGraph) (*G.Node, error)) []float32 {
	t.Helper()
	g := G.NewGraph()
	out, err := build(g)
	if err != nil {
		t.Fatal(err)
	}
	var v G.Value
	G.Read(out, &v)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), v.Data().([]float32)...)
}

func constant(g *G.ExprGraph, name string, data []float32, shape ...int) *G.Node {
	return G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
}

func TestConvMatchesGorgoniaConv2d(t *testing.T) {
	cases := []convGeom{
		{C: 3, H: 23, W: 23, O: 4, K: 11, S: 4, P: 2, Groups: 1},
		{C: 4, H: 9, W: 9, O: 5, K: 3, S: 1, P: 1, Groups: 1},
	}
	r := rand.New(rand.NewPCG(21, 22))
	for _, g := range cases {
		g.OH, g.OW = (g.H+2*g.P-g.K)/g.S+1, (g.W+2*g.P-g.K)/g.S+1
		const n = 2
		x, w := randn(r, n*g.inSize(), 1), randn(r, g.O*g.C*g.K*g.K, 1)
		want := runGorgonia(t, func(gr *G.ExprGraph) (*G.Node, error) {
			return G.Conv2d(constant(gr, "x", x, n, g.C, g.H, g.W), constant(gr, "w", w, g.O, g.C, g.K, g.K),
				tensor.Shape{g.K, g.K}, []int{g.P, g.P}, []int{g.S, g.S}, []int{1, 1})
		})
		l := newConvLayer(g, n, false, newWorkspace())
		l.forward(x, w, make([]float32, g.O))
		closeTo(t, "conv vs gorgonia.Conv2d", l.y.data, to64(want), 1e-5)
	}
}

func TestPoolMatchesGorgoniaMaxPool2D(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const n, c, h, w = 2, 3, 13, 13
	x := randn(r, n*c*h*w, 1)
	want := runGorgonia(t, func(gr *G.ExprGraph) (*G.Node, error) {
		return G.MaxPool2D(constant(gr, "x", x, n, c, h, w), tensor.Shape{3, 3}, []int{0, 0}, []int{2, 2})
	})
	l := newPoolLayer(n, c, h, w, 3, 2, 0)
	l.forward(x)
	closeTo(t, "pool vs gorgonia.MaxPool2D", l.y.data, to64(want), 0)
}
