package gpu

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// SpecJSON is a spec as the PyTorch scripts of tools/gpucheck read it:
// the layer list (field names as in alexnet.Layer) with each layer's
// output shape per image.
type SpecJSON struct {
	Name    string      `json:"name"`
	Input   [3]int      `json:"input"`
	Classes int         `json:"classes"`
	Layers  []LayerJSON `json:"layers"`
}

// LayerJSON is one layer with its output shape, C×H×W.
type LayerJSON struct {
	alexnet.Layer
	OutShape [3]int `json:"out_shape"`
}

// NewSpecJSON describes s.
func NewSpecJSON(s alexnet.Spec) (SpecJSON, error) {
	shapes, err := s.Shapes()
	if err != nil {
		return SpecJSON{}, err
	}
	out := SpecJSON{Name: s.Name, Input: s.Input, Classes: s.Classes}
	for i, l := range s.Layers {
		out.Layers = append(out.Layers, LayerJSON{Layer: l, OutShape: [3]int{shapes[i].C, shapes[i].H, shapes[i].W}})
	}
	return out, nil
}

// OracleManifest describes an oracle export (manifest.json): every
// tensor is a raw little-endian file beside it.
type OracleManifest struct {
	Model       string                `json:"model"`
	Batch       int                   `json:"batch"`
	Precision   string                `json:"precision"`
	Seed        uint64                `json:"seed"`
	LR          float32               `json:"lr"`
	Momentum    float32               `json:"momentum"`
	WeightDecay float32               `json:"weight_decay"`
	Loss        JSONFloat             `json:"loss"` // a string when not finite
	Spec        SpecJSON              `json:"spec"`
	Params      []string              `json:"params"` // in spec order
	Tensors     map[string]OracleFile `json:"tensors"`
}

// OracleFile is one tensor's file.
type OracleFile struct {
	File  string `json:"file"`
	DType string `json:"dtype"` // float32, int32 or uint8
	Shape []int  `json:"shape"`
}

// WriteOracle runs one training step of net on s and the SGD update, and
// writes into dir everything an outside implementation needs to redo and
// check it (tools/gpucheck/torch_oracle.py): the initial weights (params,
// which the net must have been built with), the normalised input, the
// labels, the dropout masks, and what the net computed: logits, loss,
// every gradient, and every weight and momentum after the update. With x
// (CrossCheckInput's continuous batch) the step trains on x with s's
// labels instead of on s's pixels, for the reason CrossCheckResult gives.
func WriteOracle(dir string, net *Net, params map[string][]float32, s *pipeline.Slot, x []float32, lr, momentum, weightDecay float32) (*OracleManifest, error) {
	spec := net.Spec()
	m := &OracleManifest{Model: spec.Name, Batch: net.Batch(), Precision: net.opt.Precision.String(), Seed: net.opt.Seed,
		LR: lr, Momentum: momentum, WeightDecay: weightDecay, Tensors: map[string]OracleFile{}}
	var err error
	if m.Spec, err = NewSpecJSON(spec); err != nil {
		return nil, err
	}
	var loss float64
	if x != nil {
		if s.N != net.Batch() {
			return nil, fmt.Errorf("gpu: oracle: %d labels for a batch of %d", s.N, net.Batch())
		}
		loss, _, err = net.trainFloat(x, s.Labels[:s.N])
	} else {
		loss, _, err = net.TrainStep(s)
	}
	if err != nil {
		return nil, err
	}
	m.Loss = JSONFloat(loss)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	put := func(name, dtype string, shape []int, data []byte) error {
		file := strings.ReplaceAll(name, "/", "_") + "." + dtype
		m.Tensors[name] = OracleFile{File: file, DType: dtype, Shape: shape}
		return os.WriteFile(filepath.Join(dir, file), data, 0o644)
	}
	b, in := net.Batch(), spec.Input
	input, err := net.Input()
	if err != nil {
		return nil, err
	}
	logits, err := net.Logits()
	if err != nil {
		return nil, err
	}
	grads, err := net.Grads()
	if err != nil {
		return nil, err
	}
	masks, err := net.DropoutMasks()
	if err != nil {
		return nil, err
	}
	labels := make([]byte, 4*b)
	for i, l := range s.Labels[:b] {
		binary.LittleEndian.PutUint32(labels[4*i:], uint32(l))
	}
	shapes, _ := spec.Shapes()
	errs := []error{
		put("input", "float32", []int{b, in[0], in[1], in[2]}, f32le(input)),
		put("labels", "int32", []int{b}, labels),
		put("logits", "float32", []int{b, spec.Classes}, f32le(logits)),
	}
	for i, l := range spec.Layers {
		if mk, ok := masks[l.Name]; ok {
			// The mask covers the dropout's input: the previous layer's output.
			sh := shapes[i-1]
			errs = append(errs, put("mask/"+l.Name, "uint8", []int{b, sh.C * sh.H * sh.W}, mk))
		}
	}
	for _, ps := range spec.Params() {
		m.Params = append(m.Params, ps.Name)
		errs = append(errs, put("param/"+ps.Name, "float32", ps.Shape, f32le(params[ps.Name])),
			put("grad/"+ps.Name, "float32", ps.Shape, f32le(grads[ps.Name])))
	}
	if err := net.Update(lr, momentum, weightDecay); err != nil {
		return nil, err
	}
	after, err := net.Params()
	if err != nil {
		return nil, err
	}
	for i, ps := range spec.Params() {
		errs = append(errs, put("after_w/"+ps.Name, "float32", ps.Shape, f32le(after[i].W)),
			put("after_v/"+ps.Name, "float32", ps.Shape, f32le(after[i].V)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), js, 0o644); err != nil {
		return nil, fmt.Errorf("gpu: oracle manifest: %w", err)
	}
	return m, nil
}

// f32le encodes float32s little-endian, whatever the host's order.
func f32le(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
