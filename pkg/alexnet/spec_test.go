package alexnet

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func mustBuild(t testing.TB, variant string, classes, hw int) Spec {
	t.Helper()
	s, err := Build(variant, classes, hw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildShapes(t *testing.T) {
	cases := []struct {
		variant string
		classes int
		hw      int
		want    map[string]Shape // selected layers
	}{
		{"alexnet", 1000, 0, map[string]Shape{
			"conv1": {96, 55, 55}, "pool1": {96, 27, 27}, "conv2": {256, 27, 27}, "pool2": {256, 13, 13},
			"conv3": {384, 13, 13}, "conv4": {384, 13, 13}, "conv5": {256, 13, 13}, "pool5": {256, 6, 6},
			"flatten": {9216, 1, 1}, "fc6": {4096, 1, 1}, "fc7": {4096, 1, 1}, "fc8": {1000, 1, 1},
		}},
		{"alexnet-owt", 100, 224, map[string]Shape{
			"conv1": {64, 55, 55}, "pool1": {64, 27, 27}, "conv2": {192, 27, 27}, "pool2": {192, 13, 13},
			"conv5": {256, 13, 13}, "pool5": {256, 6, 6}, "fc8": {100, 1, 1},
		}},
		{"small", 10, 0, map[string]Shape{
			"conv1": {32, 32, 32}, "pool1": {32, 15, 15}, "norm1": {32, 15, 15}, "conv2": {32, 15, 15},
			"pool2": {32, 7, 7}, "conv3": {64, 7, 7}, "pool3": {64, 3, 3}, "flatten": {576, 1, 1}, "fc4": {10, 1, 1},
		}},
		{"small", 10, 24, map[string]Shape{"pool1": {32, 11, 11}, "pool2": {32, 5, 5}, "pool3": {64, 2, 2}}},
		{"small-fc", 10, 0, map[string]Shape{
			"pool2": {32, 7, 7}, "conv3": {64, 7, 7}, "flatten": {3136, 1, 1}, "drop4": {3136, 1, 1},
			"fc4": {256, 1, 1}, "fc5": {10, 1, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.variant, func(t *testing.T) {
			s := mustBuild(t, tc.variant, tc.classes, tc.hw)
			shapes, err := s.Shapes()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Shape{}
			for i, l := range s.Layers {
				got[l.Name] = shapes[i]
			}
			for name, want := range tc.want {
				if got[name] != want {
					t.Errorf("%s: %v, want %v", name, got[name], want)
				}
			}
		})
	}
}

// TestPaperLayerOrder pins the paper's sequence, so a reordering (LRN after
// pooling, dropout on pool5 as torchvision has it) is caught.
func TestPaperLayerOrder(t *testing.T) {
	s := mustBuild(t, "alexnet", 1000, 0)
	var names []string
	for _, l := range s.Layers {
		names = append(names, l.Name)
	}
	want := "conv1 relu1 norm1 pool1 conv2 relu2 norm2 pool2 conv3 relu3 conv4 relu4 conv5 relu5 pool5 flatten fc6 relu6 drop6 fc7 relu7 drop7 fc8"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("layers\n got %s\nwant %s", got, want)
	}
	groups := map[string]int{}
	for _, l := range s.Layers {
		if l.Kind == Conv {
			groups[l.Name] = l.groups()
		}
		if l.Kind == LRN && (l.LRN.Alpha/float64(l.LRN.Size) != 1e-4 || l.LRN.K != 2 || l.LRN.Beta != 0.75) {
			t.Errorf("%s: %+v is not the paper's k=2, α=1e-4 per element, β=0.75", l.Name, l.LRN)
		}
		if l.Kind == Dropout && l.P != 0.5 {
			t.Errorf("%s: p = %g", l.Name, l.P)
		}
	}
	if want := map[string]int{"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}; !reflect.DeepEqual(groups, want) {
		t.Errorf("groups %v, want %v", groups, want)
	}
	// The paper trained on centred raw RGB; torchvision's net and the
	// small ones on standardised inputs.
	std := [3]float32{58, 57, 57.5}
	for _, tc := range []struct {
		variant string
		want    [3]float32
	}{{"alexnet", [3]float32{1, 1, 1}}, {"alexnet-owt", std}, {"small", std}, {"small-fc", std}} {
		if got := mustBuild(t, tc.variant, 10, 0).InputStd(std); got != tc.want {
			t.Errorf("%s: InputStd %v, want %v", tc.variant, got, tc.want)
		}
	}
	// Raw pixels suit the paper's N(0, 0.01) only: He's draw assumes
	// inputs of unit variance, whatever the model.
	for _, tc := range []struct {
		variant, scheme string
		want            [3]float32
	}{{"alexnet", "", [3]float32{1, 1, 1}}, {"alexnet", "paper", [3]float32{1, 1, 1}}, {"alexnet", "he", std},
		{"alexnet-convnet", "he", std}, {"alexnet-owt", "paper", std}, {"small", "paper", std}, {"small", "", std}} {
		if got := mustBuild(t, tc.variant, 10, 0).InputStdFor(tc.scheme, std); got != tc.want {
			t.Errorf("%s under %q: InputStdFor %v, want %v", tc.variant, tc.scheme, got, tc.want)
		}
	}
}

func TestNumParams(t *testing.T) {
	cases := []struct {
		variant string
		classes int
		want    int
	}{
		{"alexnet", 1000, 60_965_224},     // the paper's "60 million"
		{"alexnet-owt", 1000, 61_100_840}, // torchvision's count
		{"alexnet", 10, 60_965_224 - 990*4097},
		{"small", 10, 2432 + 25632 + 51264 + 5770},
		{"small-fc", 10, 2432 + 25632 + 51264 + 3136*256 + 256 + 2570},
	}
	for _, tc := range cases {
		if got := mustBuild(t, tc.variant, tc.classes, 0).NumParams(); got != tc.want {
			t.Errorf("%s/%d: %d params, want %d", tc.variant, tc.classes, got, tc.want)
		}
	}
}

func TestParamNamesAndShapes(t *testing.T) {
	ps := mustBuild(t, "alexnet", 1000, 0).Params()
	want := []struct {
		name  string
		shape []int
		bias  float64
	}{
		{"conv1.weight", []int{96, 3, 11, 11}, 0}, {"conv1.bias", []int{96}, 0},
		{"conv2.weight", []int{256, 48, 5, 5}, 0}, {"conv2.bias", []int{256}, 1},
		{"conv3.weight", []int{384, 256, 3, 3}, 0}, {"conv3.bias", []int{384}, 0},
		{"conv4.weight", []int{384, 192, 3, 3}, 0}, {"conv4.bias", []int{384}, 1},
		{"conv5.weight", []int{256, 192, 3, 3}, 0}, {"conv5.bias", []int{256}, 1},
		{"fc6.weight", []int{4096, 9216}, 0}, {"fc6.bias", []int{4096}, 1},
		{"fc7.weight", []int{4096, 4096}, 0}, {"fc7.bias", []int{4096}, 1},
		{"fc8.weight", []int{1000, 4096}, 0}, {"fc8.bias", []int{1000}, 0},
	}
	if len(ps) != len(want) {
		t.Fatalf("%d params, want %d", len(ps), len(want))
	}
	for i, w := range want {
		p := ps[i]
		if p.Name != w.name || !reflect.DeepEqual(p.Shape, w.shape) {
			t.Errorf("param %d: %s %v, want %s %v", i, p.Name, p.Shape, w.name, w.shape)
		}
		if len(p.Shape) == 1 && (p.Init.Kind != Constant || p.Init.Value != w.bias) {
			t.Errorf("%s: init %+v, want constant %g", p.Name, p.Init, w.bias)
		}
		if len(p.Shape) > 1 && (p.Init.Kind != Normal || p.Init.Std != 0.01) {
			t.Errorf("%s: init %+v, want N(0, 0.01)", p.Name, p.Init)
		}
	}
}

func TestFLOPs(t *testing.T) {
	cases := []struct {
		variant        string
		classes        int
		forward, train int64
	}{
		// Hand sums of 2·out·in_per_group·K² over conv and fc layers; the
		// one-tower figure is torchvision's 0.71 GMAC.
		{"alexnet", 1000, 1_448_813_632, 4_135_610_496},
		{"alexnet-owt", 1000, 1_428_376_960, 4_144_577_280},
		{"small", 10, 21_464_320, 59_477_760},
		// small's convolutions plus fc4 (3136·256) and fc5 (256·10).
		{"small-fc", 10, 21_464_320 - 2*5760 + 2*(3136*256+2560), 3*(21_464_320-2*5760+2*(3136*256+2560)) - 2*2_457_600},
	}
	for _, tc := range cases {
		s := mustBuild(t, tc.variant, tc.classes, 0)
		if got := s.ForwardFLOPs(); got != tc.forward {
			t.Errorf("%s: ForwardFLOPs %d, want %d", tc.variant, got, tc.forward)
		}
		if got := s.TrainFLOPs(); got != tc.train {
			t.Errorf("%s: TrainFLOPs %d, want %d", tc.variant, got, tc.train)
		}
	}
	if (Spec{}).ForwardFLOPs() != 0 || (Spec{}).TrainFLOPs() != 0 {
		t.Error("an invalid spec should cost 0")
	}
}

func TestBuildRejects(t *testing.T) {
	cases := []struct {
		variant      string
		classes, hw  int
		errSubstring string
	}{
		{"vgg", 10, 0, "unknown variant"},
		{"alexnet", 0, 0, "classes"},
		{"alexnet", 1000, 32, "window"},
		{"small", 10, 4, "window"},
	}
	for _, tc := range cases {
		_, err := Build(tc.variant, tc.classes, tc.hw)
		if err == nil || !strings.Contains(err.Error(), tc.errSubstring) {
			t.Errorf("Build(%q, %d, %d) = %v, want error containing %q", tc.variant, tc.classes, tc.hw, err, tc.errSubstring)
		}
	}
}

func TestShapesRejectsBrokenSpecs(t *testing.T) {
	base := func() Spec {
		s := mustBuild(t, "small", 10, 0)
		s.Layers = append([]Layer(nil), s.Layers...)
		return s
	}
	cases := []struct {
		name   string
		edit   func(*Spec)
		errSub string
	}{
		{"groups", func(s *Spec) { s.Layers[0].Groups = 2 }, "groups"},
		{"even lrn", func(s *Spec) { s.Layers[3].LRN.Size = 4 }, "LRN"},
		{"dropout 1", func(s *Spec) {
			s.Layers = append(s.Layers[:12], append([]Layer{{Kind: Dropout, Name: "d", P: 1}}, s.Layers[12:]...)...)
		}, "dropout"},
		{"duplicate name", func(s *Spec) { s.Layers[1].Name = "conv1" }, "repeated"},
		{"fc before flatten", func(s *Spec) { s.Layers[11] = Layer{Kind: FC, Name: "x", Out: 5} }, "fc before flatten"},
		{"wrong classes", func(s *Spec) { s.Classes = 7 }, "classes"},
		{"unknown kind", func(s *Spec) { s.Layers[2].Kind = "tanh" }, "unknown kind"},
		{"conv after flatten", func(s *Spec) {
			s.Layers = append(s.Layers[:12], append([]Layer{conv("c", 4, 1, 1, 0, 1, 0)}, s.Layers[12:]...)...)
		}, "after flatten"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(&s)
			if _, err := s.Shapes(); err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("Shapes() = %v, want error containing %q", err, tc.errSub)
			}
			if s.Params() != nil || s.NumParams() != 0 {
				t.Fatal("an invalid spec has parameters")
			}
		})
	}
}

func stats(v []float32) (mean, std float64) {
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (float64(x) - mean) * (float64(x) - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)))
}

func TestInitParams(t *testing.T) {
	s := mustBuild(t, "small", 10, 0)
	cases := []struct {
		scheme string
		std    func(p ParamSpec) float64
	}{
		{"paper", func(ParamSpec) float64 { return 0.01 }},
		{"he", func(p ParamSpec) float64 { return math.Sqrt(2 / float64(p.FanIn)) }},
		{"", func(p ParamSpec) float64 { return math.Sqrt(2 / float64(p.FanIn)) }}, // small's default is he
	}
	for _, tc := range cases {
		t.Run(tc.scheme, func(t *testing.T) {
			vals, err := InitParams(s, tc.scheme, 7)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := InitParams(s, tc.scheme, 7)
			other, _ := InitParams(s, tc.scheme, 8)
			if !reflect.DeepEqual(vals, again) {
				t.Fatal("same seed, different values")
			}
			for _, p := range s.Params() {
				v := vals[p.Name]
				if len(v) != p.Size() {
					t.Fatalf("%s: %d values, want %d", p.Name, len(v), p.Size())
				}
				if len(p.Shape) == 1 {
					for _, x := range v {
						if x != 0 {
							t.Fatalf("%s: bias %g, want 0", p.Name, x)
						}
					}
					continue
				}
				if reflect.DeepEqual(v, other[p.Name]) {
					t.Errorf("%s: seeds 7 and 8 give the same weights", p.Name)
				}
				mean, std := stats(v)
				want := tc.std(p)
				// Tolerances are 5 standard errors of the estimates.
				n := float64(len(v))
				if math.Abs(mean) > 5*want/math.Sqrt(n) || math.Abs(std-want) > 5*want/math.Sqrt(2*n) {
					t.Errorf("%s: mean %g std %g, want 0 and %g", p.Name, mean, std, want)
				}
			}
		})
	}
	if _, err := InitParams(s, "xavier", 1); err == nil {
		t.Error("unknown scheme accepted")
	}
}

func TestInitParamsPaperBiases(t *testing.T) {
	if testing.Short() {
		t.Skip("draws 61M values")
	}
	s := mustBuild(t, "alexnet", 1000, 0)
	vals, err := InitParams(s, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"} {
		want := float32(0)
		if strings.Contains("conv2 conv4 conv5 fc6 fc7", name) {
			want = 1
		}
		for _, x := range vals[name+".bias"] {
			if x != want {
				t.Fatalf("%s.bias = %g, want %g", name, x, want)
			}
		}
	}
	if _, std := stats(vals["fc6.weight"]); math.Abs(std-0.01) > 1e-5 {
		t.Errorf("fc6.weight std %g, want 0.01", std)
	}
}

func BenchmarkInitParamsAlexNet(b *testing.B) {
	s := mustBuild(b, "alexnet", 1000, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InitParams(s, "paper", 1); err != nil {
			b.Fatal(err)
		}
	}
}

// MinInput is the exact edge: the variant builds at it and not one pixel
// below.
func TestMinInput(t *testing.T) {
	for _, v := range Variants() {
		m := MinInput(v)
		if m < 2 {
			t.Fatalf("%s: MinInput %d", v, m)
		}
		if _, err := Build(v, 10, m); err != nil {
			t.Errorf("%s at its MinInput %d: %v", v, m, err)
		}
		if _, err := Build(v, 10, m-1); err == nil {
			t.Errorf("%s builds at %d, below its MinInput %d", v, m-1, m)
		}
	}
	if m := MinInput("alexnet"); m != 63 {
		t.Errorf("alexnet's MinInput %d, want 63 (conv1 11/4 pad 2, three 3/2 pools)", m)
	}
	if m := MinInput("vgg"); m != 0 {
		t.Errorf("an unknown variant's MinInput %d, want 0", m)
	}
}

// alexnet-convnet is alexnet but for the strength of its two LRN layers:
// the printed α = 1e-4 on the sum of squares is 5e-4 on their mean
// (cuDNN's form), cuda-convnet's is 1e-4 on the mean.
func TestConvnetLRN(t *testing.T) {
	paper, cc := mustBuild(t, "alexnet", 1000, 0), mustBuild(t, "alexnet-convnet", 1000, 0)
	if cc.Name != "alexnet-convnet" {
		t.Errorf("Name %q", cc.Name)
	}
	if len(paper.Layers) != len(cc.Layers) {
		t.Fatalf("%d layers against alexnet's %d", len(cc.Layers), len(paper.Layers))
	}
	lrns := 0
	for i, l := range cc.Layers {
		p := paper.Layers[i]
		if l.Kind == LRN {
			lrns++
			if want := (LRNParams{Size: 5, Alpha: 1e-4, Beta: 0.75, K: 2}); l.LRN != want {
				t.Errorf("%s: %+v, want %+v", l.Name, l.LRN, want)
			}
			if p.LRN.Alpha != 5*l.LRN.Alpha {
				t.Errorf("%s: alexnet's α %g is not 5× alexnet-convnet's %g", l.Name, p.LRN.Alpha, l.LRN.Alpha)
			}
			p.LRN = l.LRN
		}
		if !reflect.DeepEqual(l, p) {
			t.Errorf("layer %d: %+v, alexnet has %+v", i, l, p)
		}
	}
	if lrns != 2 {
		t.Errorf("%d LRN layers, want 2", lrns)
	}
	if cc.NumParams() != paper.NumParams() || cc.TrainFLOPs() != paper.TrainFLOPs() || cc.MeanOnly != paper.MeanOnly || cc.InitScheme != paper.InitScheme {
		t.Error("alexnet-convnet differs from alexnet beyond LRN")
	}
	if !reflect.DeepEqual(cc.Params(), paper.Params()) {
		t.Error("parameter names or shapes differ: checkpoints would not be interchangeable")
	}
}
