// Package alexnet owns the architecture as data: the layer lists of the
// networks this project trains, their shapes, parameter names and
// initialisation, and their arithmetic cost. Both backends (pkg/nn/cpu and
// pkg/nn/gpu) build from a Spec and name parameters as Params does, so a
// checkpoint written by one loads in the other.
//
// Conventions, fixed here so the backends agree:
//
//   - Tensors are NCHW. Convolution weights are OIHW with I = in/groups;
//     fully connected weights are [out, in], as in PyTorch. Parameter names
//     follow PyTorch's style: "conv1.weight", "conv1.bias", "fc6.weight".
//   - Grouped convolution splits input and output channels into Groups
//     contiguous blocks; group g's outputs see only group g's inputs (the
//     paper's two GPU towers).
//   - Pooling and convolution output sizes use floor((in + 2·pad − k)/stride) + 1,
//     as cuDNN and PyTorch do (Caffe and cuda-convnet use ceil for pooling).
//     The two agree on every AlexNet layer; they differ only for the small
//     net, whose pools give 32→15→7→3 here rather than 32→16→8→4.
//   - LRN follows cuDNN's definition, across channels:
//     b_c = a_c / (K + (Alpha/Size)·Σ a_j²)^Beta, the sum over the Size
//     channels centred on c (clipped at the edges; Size is odd). The paper
//     writes the sum multiplied by α = 1e-4 directly, without /n, so the
//     paper's layer is Alpha = Size·1e-4 = 5e-4 here. Caffe's bvlc_alexnet
//     passes alpha 1e-4 into the /n form, a 5× weaker normalisation than the
//     paper as printed, and so did the authors' cuda-convnet, which divides
//     a cross-map norm's scale by its size. "alexnet" follows the paper as
//     printed, "alexnet-convnet" the code.
//   - The paper's 224×224 input gives conv1 a 55×55 output either with
//     padding 2 (floor division, as here and in torchvision) or unpadded
//     with cuda-convnet's rounding up of output sizes; the two sample
//     grids differ by a 2-px shift. Caffe reaches 55 from an unpadded 227.
//   - Inputs are (pixel + lighting − mean)/std per channel, except for a
//     MeanOnly spec under the paper's initialisation, whose std is 1 (see
//     InputStdFor): the paper trained on "(centered) raw
//     RGB values", and its other constants (LRN's k and α, the N(0, 0.01)
//     initialisation, the learning rate) are set for that scale. Divided
//     by the std ingest computes (pooled over every pixel: about 70 on
//     ImageNet), LRN's sum would be some 70² times smaller against k,
//     leaving norm1 and norm2 a fixed scale of 2^−0.75.
package alexnet

import (
	"fmt"
)

// Kind names a layer type.
type Kind string

// The layer kinds a Spec may contain.
const (
	Conv    Kind = "conv"
	LRN     Kind = "lrn"
	ReLU    Kind = "relu"
	MaxPool Kind = "maxpool"
	Dropout Kind = "dropout"
	Flatten Kind = "flatten"
	FC      Kind = "fc"
)

// LRNParams are the cross-channel normalisation constants in cuDNN's
// convention (see the package comment).
type LRNParams struct {
	Size  int     // channels in the window, odd
	Alpha float64 // multiplies the mean, not the sum, of the squares
	Beta  float64
	K     float64
}

// Layer is one step of the network. Which fields matter depends on Kind:
// Conv uses Out, K, Stride, Pad, Groups and BiasInit; MaxPool uses K,
// Stride and Pad; FC uses Out and BiasInit; LRN uses LRN; Dropout uses P.
type Layer struct {
	Kind     Kind
	Name     string
	Out      int // output channels (conv) or features (fc)
	K        int // kernel or window size (square)
	Stride   int
	Pad      int
	Groups   int // conv only; 0 means 1
	LRN      LRNParams
	P        float64 // dropout probability of zeroing a unit
	BiasInit float64 // the paper scheme's constant bias
}

// groups returns the effective group count.
func (l Layer) groups() int {
	if l.Groups <= 0 {
		return 1
	}
	return l.Groups
}

// HasParams reports whether the layer owns a weight and a bias.
func (l Layer) HasParams() bool { return l.Kind == Conv || l.Kind == FC }

// Spec is a whole network: what goes in, what comes out, and the layers
// between.
type Spec struct {
	Name    string
	Input   [3]int // C, H, W
	Classes int
	Layers  []Layer
	// InitScheme is the initialisation this variant is meant to train
	// with (see Schemes); InitParams uses it when asked for "".
	InitScheme string
	// MeanOnly: inputs are centred, not divided by the std (see the
	// package comment).
	MeanOnly bool
	// PaperDropout is the paper's dropout: kept units pass unscaled in
	// training, and evaluation multiplies every unit by 1−p ("At test
	// time, we use all the neurons but multiply their outputs by 0.5").
	// false is the inverted form of Caffe and PyTorch: kept units are
	// scaled by 1/(1−p) in training, and evaluation leaves them alone.
	// Both compute the same function at test; the training differs (the
	// weights after a dropout layer live at another scale). Not a
	// variant's: a run chooses it (train --dropout), and its checkpoint
	// keeps it.
	PaperDropout bool
}

// ImageNetMean and ImageNetStd are torchvision's ILSVRC2012 constants in
// 0–255 units, for checks and benchmarks that have no meta.json to read
// them from. The std is a mean of per-image stds; ingest's, pooled over
// every pixel, is larger (about 70).
var (
	ImageNetMean = [3]float32{123.68, 116.78, 103.94}
	ImageNetStd  = [3]float32{58.4, 57.1, 57.4}
)

// InputStd is the divisor this spec's inputs take under its own
// initialisation, given the train images' per-channel std: std itself, or
// 1 for a MeanOnly spec.
func (s Spec) InputStd(std [3]float32) [3]float32 { return s.InputStdFor("", std) }

// InputStdFor is InputStd under an initialisation scheme ("" for the
// spec's own). MeanOnly holds for the paper's N(0, 0.01) alone: He's
// N(0, 2/fan_in) assumes inputs of unit variance, and on raw pixels (std
// about 70) it starts the paper's net with logits some 70 times too large
// (at 200 classes and batch 16, losses of 152, 1.1e6 and 7e15, then a stop
// for divergence).
func (s Spec) InputStdFor(scheme string, std [3]float32) [3]float32 {
	if scheme == "" {
		scheme = s.InitScheme
	}
	if s.MeanOnly && scheme == "paper" {
		return [3]float32{1, 1, 1}
	}
	return std
}

// Shape is the per-sample size of a layer's output. Flatten and FC
// outputs have H = W = 1.
type Shape struct{ C, H, W int }

// Size is the number of elements of one sample.
func (s Shape) Size() int { return s.C * s.H * s.W }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// Variants lists the names Build accepts.
func Variants() []string {
	return []string{"alexnet", "alexnet-convnet", "alexnet-owt", "small", "small-fc"}
}

// Build returns the named variant with the given number of classes and
// square input size. inputHW 0 picks the variant's natural size: 224 for
// the two AlexNets, 32 for the small ones.
//
//   - "alexnet": the paper's two-tower net (groups 2 in conv2, conv4, conv5),
//     with LRN after conv1 and conv2, 60,965,224 parameters at 1000 classes.
//   - "alexnet-convnet": "alexnet" with LRN's α as the authors' code
//     applied it: cuda-convnet's layer parser divides a cross-map norm's
//     scale by its size, so the paper's α = 1e-4 multiplied the mean of the
//     squares, not their sum (Alpha = 1e-4 here, 5× weaker than the print;
//     Caffe's bvlc_alexnet divides too, but with k = 1, not 2). Everything
//     else is "alexnet"'s, parameters and checkpoint layout included; only
//     the two LRN layers' strength differs, and the checkpoint's model name
//     keeps which one a run trained.
//   - "alexnet-owt": torchvision's one-tower variant ("one weird trick"):
//     64-192-384-256-256 channels, no LRN, no groups, 61,100,840 parameters.
//     torchvision's AdaptiveAvgPool2d((6,6)) before the classifier is the
//     identity at 224 and is left out; other input sizes change fc6.
//   - "small": cuda-convnet's CIFAR-10 layers-18pct shape, for CPU demos:
//     three 5×5 convolutions (32, 32, 64), each followed by a 3/2 pool,
//     LRN after the first two, one fc layer. Its average pools are max
//     pools here (gorgonia's AveragePool2D is broken), and it initialises
//     with He by default: under the paper's N(0, 0.01) its activations
//     shrink layer by layer, and on pkg/nn/cpu's synthetic 10-class task
//     the loss stayed at ln 10 for 80 steps (batch 32, lr 0.01), while He
//     at lr 0.001 reached 0.1.
//   - "small-fc": small with conv3's map left unpooled (64×7×7 at 32 px)
//     and a 256-unit hidden FC layer, dropout 0.5 on its input, the shape of the
//     simple CNNs that reach 91–93% on Fashion-MNIST; `just learn` trains
//     it. At the same cost per image as small (a 2-core epoch of 60k 32 px
//     images takes about 1.7 minutes) it learns faster: after 2 epochs at
//     lr 0.01 its Fashion-MNIST test error was 12.8%, small's 14.1%;
//     pooling conv3 as small does gave 14.9%, and doubling conv2 and conv3
//     12.0% at twice the time.
func Build(variant string, classes, inputHW int) (Spec, error) {
	if classes < 1 {
		return Spec{}, fmt.Errorf("alexnet: %d classes, want at least 1", classes)
	}
	var s Spec
	switch variant {
	case "alexnet":
		s = paper(classes)
	case "alexnet-convnet":
		s = paperConvnetLRN(classes)
	case "alexnet-owt":
		s = oneTower(classes)
	case "small":
		s = small(classes)
	case "small-fc":
		s = smallFC(classes)
	default:
		return Spec{}, fmt.Errorf("alexnet: unknown variant %q (want one of %v)", variant, Variants())
	}
	if inputHW != 0 {
		s.Input[1], s.Input[2] = inputHW, inputHW
	}
	if _, err := s.Shapes(); err != nil {
		return Spec{}, fmt.Errorf("alexnet: %s at %dx%d: %w", variant, s.Input[1], s.Input[2], err)
	}
	return s, nil
}

// paperLRN is the paper's k=2, n=5, α=1e-4, β=0.75 in cuDNN's convention.
var paperLRN = LRNParams{Size: 5, Alpha: 5 * 1e-4, Beta: 0.75, K: 2}

// convnetLRN is the same layer as cuda-convnet computed it from the
// paper's constants: scale 1e-4 divided by the size, which is cuDNN's
// convention with Alpha 1e-4.
var convnetLRN = LRNParams{Size: 5, Alpha: 1e-4, Beta: 0.75, K: 2}

func conv(name string, out, k, stride, pad, groups int, bias float64) Layer {
	return Layer{Kind: Conv, Name: name, Out: out, K: k, Stride: stride, Pad: pad, Groups: groups, BiasInit: bias}
}

func pool(name string) Layer { return Layer{Kind: MaxPool, Name: name, K: 3, Stride: 2} }

func relu(name string) Layer { return Layer{Kind: ReLU, Name: name} }

func lrn(name string, p LRNParams) Layer { return Layer{Kind: LRN, Name: name, LRN: p} }

func drop(name string) Layer { return Layer{Kind: Dropout, Name: name, P: 0.5} }

func fc(name string, out int, bias float64) Layer {
	return Layer{Kind: FC, Name: name, Out: out, BiasInit: bias}
}

// paper drops the outputs of fc6 and fc7, "the first two fully-connected
// layers" (as cuda-convnet2's fc4096a/b and Caffe's bvlc_alexnet do);
// torchvision's layout, kept in oneTower, drops pool5's features and fc6's
// outputs instead. Its inputs are centred raw RGB (MeanOnly).
func paper(classes int) Spec {
	return Spec{
		Name: "alexnet", Input: [3]int{3, 224, 224}, Classes: classes, InitScheme: "paper", MeanOnly: true,
		Layers: []Layer{
			conv("conv1", 96, 11, 4, 2, 1, 0), relu("relu1"), lrn("norm1", paperLRN), pool("pool1"),
			conv("conv2", 256, 5, 1, 2, 2, 1), relu("relu2"), lrn("norm2", paperLRN), pool("pool2"),
			conv("conv3", 384, 3, 1, 1, 1, 0), relu("relu3"),
			conv("conv4", 384, 3, 1, 1, 2, 1), relu("relu4"),
			conv("conv5", 256, 3, 1, 1, 2, 1), relu("relu5"), pool("pool5"),
			{Kind: Flatten, Name: "flatten"},
			fc("fc6", 4096, 1), relu("relu6"), drop("drop6"),
			fc("fc7", 4096, 1), relu("relu7"), drop("drop7"),
			fc("fc8", classes, 0),
		},
	}
}

// paperConvnetLRN is paper with convnetLRN in norm1 and norm2.
func paperConvnetLRN(classes int) Spec {
	s := paper(classes)
	s.Name = "alexnet-convnet"
	for i := range s.Layers {
		if s.Layers[i].Kind == LRN {
			s.Layers[i].LRN = convnetLRN
		}
	}
	return s
}

// oneTower keeps the paper's bias-one positions (conv2, conv4, conv5, fc6,
// fc7) so that the "paper" scheme means the same recipe on both nets.
func oneTower(classes int) Spec {
	return Spec{
		Name: "alexnet-owt", Input: [3]int{3, 224, 224}, Classes: classes, InitScheme: "paper",
		Layers: []Layer{
			conv("conv1", 64, 11, 4, 2, 1, 0), relu("relu1"), pool("pool1"),
			conv("conv2", 192, 5, 1, 2, 1, 1), relu("relu2"), pool("pool2"),
			conv("conv3", 384, 3, 1, 1, 1, 0), relu("relu3"),
			conv("conv4", 256, 3, 1, 1, 1, 1), relu("relu4"),
			conv("conv5", 256, 3, 1, 1, 1, 1), relu("relu5"), pool("pool5"),
			{Kind: Flatten, Name: "flatten"},
			drop("drop6"), fc("fc6", 4096, 1), relu("relu6"),
			drop("drop7"), fc("fc7", 4096, 1), relu("relu7"),
			fc("fc8", classes, 0),
		},
	}
}

// smallLRN is layers-18pct's cmrnorm: size 3, scale 5e-5, pow 0.75, and
// cuda-convnet's constant 1.
var smallLRN = LRNParams{Size: 3, Alpha: 5e-5, Beta: 0.75, K: 1}

// small keeps layers-18pct's order, in which the first pool comes before
// its ReLU (the two commute for max pooling).
func small(classes int) Spec {
	return Spec{
		Name: "small", Input: [3]int{3, 32, 32}, Classes: classes, InitScheme: "he",
		Layers: []Layer{
			conv("conv1", 32, 5, 1, 2, 1, 0), pool("pool1"), relu("relu1"), lrn("norm1", smallLRN),
			conv("conv2", 32, 5, 1, 2, 1, 0), relu("relu2"), pool("pool2"), lrn("norm2", smallLRN),
			conv("conv3", 64, 5, 1, 2, 1, 0), relu("relu3"), pool("pool3"),
			{Kind: Flatten, Name: "flatten"},
			fc("fc4", classes, 0),
		},
	}
}

// smallFC is small with a wider head: the 3×3 pool after conv3 threw away
// most of its map, and one linear layer on top underfits (small trains to
// about 7% error on Fashion-MNIST, no better than its test error).
func smallFC(classes int) Spec {
	s := small(classes)
	s.Name = "small-fc"
	s.Layers = append(s.Layers[:len(s.Layers)-3:len(s.Layers)-3],
		Layer{Kind: Flatten, Name: "flatten"},
		drop("drop4"), fc("fc4", 256, 0), relu("relu4"),
		fc("fc5", classes, 0),
	)
	return s
}

// MinInput is the smallest input side variant's layers fit (every window
// no larger than its padded input), or 0 for an unknown variant. Larger
// sides always fit, so a model fails on a crop exactly when it is smaller.
func MinInput(variant string) int {
	for side := 1; side <= 4096; side++ {
		if _, err := Build(variant, 1, side); err == nil {
			return side
		}
	}
	return 0
}

// outSize is the floor convention shared by convolution and pooling.
func outSize(in, k, stride, pad int) int {
	return (in+2*pad-k)/stride + 1
}

// Shapes returns each layer's per-sample output shape, checking that the
// layers fit together: channel counts divisible by groups, windows no
// larger than their padded input, an FC layer's input flattened, the last
// layer producing Classes outputs.
func (s Spec) Shapes() ([]Shape, error) {
	in := Shape{s.Input[0], s.Input[1], s.Input[2]}
	if in.C < 1 || in.H < 1 || in.W < 1 {
		return nil, fmt.Errorf("input %v is empty", in)
	}
	if len(s.Layers) == 0 {
		return nil, fmt.Errorf("no layers")
	}
	out := make([]Shape, len(s.Layers))
	flat := false
	seen := map[string]bool{}
	for i, l := range s.Layers {
		if l.Name == "" || seen[l.Name] {
			return nil, fmt.Errorf("layer %d: name %q is empty or repeated", i, l.Name)
		}
		seen[l.Name] = true
		bad := func(format string, a ...any) error {
			return fmt.Errorf("layer %d (%s): %s", i, l.Name, fmt.Sprintf(format, a...))
		}
		switch l.Kind {
		case Conv, MaxPool:
			if flat {
				return nil, bad("spatial layer after flatten")
			}
			if l.K < 1 || l.Stride < 1 || l.Pad < 0 {
				return nil, bad("kernel %d, stride %d, pad %d", l.K, l.Stride, l.Pad)
			}
			if in.H+2*l.Pad < l.K || in.W+2*l.Pad < l.K {
				return nil, bad("%dx%d window does not fit a %v input padded by %d", l.K, l.K, in, l.Pad)
			}
			c := in.C
			if l.Kind == Conv {
				g := l.groups()
				if l.Out < 1 || in.C%g != 0 || l.Out%g != 0 {
					return nil, bad("%d→%d channels in %d groups", in.C, l.Out, g)
				}
				c = l.Out
			}
			in = Shape{c, outSize(in.H, l.K, l.Stride, l.Pad), outSize(in.W, l.K, l.Stride, l.Pad)}
		case LRN:
			p := l.LRN
			if p.Size < 1 || p.Size%2 == 0 || p.K <= 0 || p.Alpha < 0 || p.Beta < 0 {
				return nil, bad("LRN %+v: want odd size, k > 0, α, β ≥ 0", p)
			}
		case ReLU:
		case Dropout:
			if l.P < 0 || l.P >= 1 {
				return nil, bad("dropout probability %g outside [0, 1)", l.P)
			}
		case Flatten:
			in = Shape{in.Size(), 1, 1}
			flat = true
		case FC:
			if !flat {
				return nil, bad("fc before flatten")
			}
			if l.Out < 1 {
				return nil, bad("%d outputs", l.Out)
			}
			in = Shape{l.Out, 1, 1}
		default:
			return nil, bad("unknown kind %q", l.Kind)
		}
		out[i] = in
	}
	if !flat || in.C != s.Classes || in.H != 1 {
		return nil, fmt.Errorf("last layer gives %v, want %d classes", in, s.Classes)
	}
	return out, nil
}

// inputOf returns the shape entering layer i, given Shapes' result.
func (s Spec) inputOf(shapes []Shape, i int) Shape {
	if i == 0 {
		return Shape{s.Input[0], s.Input[1], s.Input[2]}
	}
	return shapes[i-1]
}

// LayerFLOPs returns each layer's forward cost per image, counting a
// multiply-add as two operations and only convolutions and fc layers (the
// rest is a few percent). It returns nil for an invalid spec.
func (s Spec) LayerFLOPs() []int64 {
	shapes, err := s.Shapes()
	if err != nil {
		return nil
	}
	f := make([]int64, len(s.Layers))
	for i, l := range s.Layers {
		in, out := s.inputOf(shapes, i), shapes[i]
		switch l.Kind {
		case Conv:
			f[i] = 2 * int64(out.Size()) * int64(in.C/l.groups()*l.K*l.K)
		case FC:
			f[i] = 2 * int64(in.C) * int64(l.Out)
		}
	}
	return f
}

// ForwardFLOPs is the forward cost of one image: the sum of LayerFLOPs.
// It is 0 for an invalid spec (Build never returns one).
func (s Spec) ForwardFLOPs() int64 {
	var t int64
	for _, f := range s.LayerFLOPs() {
		t += f
	}
	return t
}

// TrainFLOPs is the cost of one image's forward and backward pass. Each
// conv or fc layer costs its forward FLOPs three times (forward, weight
// gradient, input gradient), except that the first parametrised layer
// needs no input gradient. This is the figure to divide by step time for
// an achieved GFLOP/s.
func (s Spec) TrainFLOPs() int64 {
	f := s.LayerFLOPs()
	if f == nil {
		return 0
	}
	var t int64
	first := true
	for i, l := range s.Layers {
		if !l.HasParams() {
			continue
		}
		t += 2 * f[i]
		if !first {
			t += f[i]
		}
		first = false
	}
	return t
}
