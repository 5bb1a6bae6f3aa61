package trainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/alexnet-repro/alexnet/internal/regfile"
	"github.com/alexnet-repro/alexnet/shards"
)

// Metric is one line of metrics.jsonl.
type Metric struct {
	Kind     string  `json:"kind"` // "step" or "epoch"
	Step     int64   `json:"step"`
	Epoch    int     `json:"epoch"`
	Loss     float64 `json:"loss,omitempty"`
	LR       float64 `json:"lr"`
	ImgPerS  float64 `json:"img_per_s,omitempty"`
	DataWait float64 `json:"data_wait,omitempty"` // fraction of the step spent waiting for the pipeline
	Top1Err  float64 `json:"top1_err,omitempty"`
	Top5Err  float64 `json:"top5_err,omitempty"`
	ValLoss  float64 `json:"val_loss,omitempty"`
	// NoVal marks an epoch without labelled validation images: its
	// Top1Err, Top5Err and ValLoss are not measurements.
	NoVal     bool    `json:"no_val,omitempty"`
	TrainErr  float64 `json:"train_top1_err,omitempty"`
	TrainLoss float64 `json:"train_loss,omitempty"` // the epoch's mean training loss
	// Seconds is the run's wall time at this line, counted on across
	// resumes (the time between a stop and its resume left out).
	Seconds float64 `json:"seconds"`
}

// MarshalJSON writes every figure a line of its kind measures, zeros
// included: a step's loss, rate and data wait; an epoch's training error
// and loss, and its validation figures unless NoVal. The omitempty tags
// alone would drop a measured 0 (a top-5 error of 0 on a small validation
// set), leaving a reader to take the field for missing.
func (m Metric) MarshalJSON() ([]byte, error) {
	// Metric's fields in its order; a nil pointer is a figure the line's
	// kind does not measure.
	line := struct {
		Kind      string   `json:"kind"`
		Step      int64    `json:"step"`
		Epoch     int      `json:"epoch"`
		Loss      *float64 `json:"loss,omitempty"`
		LR        float64  `json:"lr"`
		ImgPerS   *float64 `json:"img_per_s,omitempty"`
		DataWait  *float64 `json:"data_wait,omitempty"`
		Top1Err   *float64 `json:"top1_err,omitempty"`
		Top5Err   *float64 `json:"top5_err,omitempty"`
		ValLoss   *float64 `json:"val_loss,omitempty"`
		NoVal     bool     `json:"no_val,omitempty"`
		TrainErr  *float64 `json:"train_top1_err,omitempty"`
		TrainLoss *float64 `json:"train_loss,omitempty"`
		Seconds   float64  `json:"seconds"`
	}{Kind: m.Kind, Step: m.Step, Epoch: m.Epoch, LR: m.LR, NoVal: m.NoVal, Seconds: m.Seconds}
	// always: the figures this kind measures; otherwise (another kind),
	// those that are set, as the omitempty tags had it.
	set := func(dst **float64, v float64, always bool) {
		if always || v != 0 {
			*dst = &v
		}
	}
	step, epoch := m.Kind == "step", m.Kind == "epoch"
	set(&line.Loss, m.Loss, step)
	set(&line.ImgPerS, m.ImgPerS, step)
	set(&line.DataWait, m.DataWait, step)
	set(&line.Top1Err, m.Top1Err, epoch && !m.NoVal)
	set(&line.Top5Err, m.Top5Err, epoch && !m.NoVal)
	set(&line.ValLoss, m.ValLoss, epoch && !m.NoVal)
	set(&line.TrainErr, m.TrainErr, epoch)
	set(&line.TrainLoss, m.TrainLoss, epoch)
	return json.Marshal(line)
}

// MetricsLog appends to metrics.jsonl.
type MetricsLog struct {
	path string
	f    *os.File
	all  []Metric
	// Dropped are the line numbers (1-based) of the old file's lines that
	// did not read as a metric and were left out; the file as it was is
	// then kept as metrics.jsonl.bak.
	Dropped []int
	// Gone says a resume found no metrics.jsonl to keep lines from.
	Gone bool
}

// OpenMetrics opens dir/metrics.jsonl. A resumed run keeps only the lines
// up to the checkpoint's step (keepUpTo), so the log reads as one
// uninterrupted run; lines that do not read as train's are left out, and
// the file as it was kept as metrics.jsonl.bak. A new run (keepUpTo < 0)
// starts an empty log without reading the old one.
func OpenMetrics(dir string, keepUpTo int64) (*MetricsLog, error) {
	return openMetrics(dir, keepUpTo, false)
}

// openMetrics is OpenMetrics for a resume whose checkpoint's epoch may
// still be pending validation: then an epoch line at its step is one a
// resume that validated it wrote and stopped before saving, and the
// validation about to run writes it again.
func openMetrics(dir string, keepUpTo int64, valPending bool) (*MetricsLog, error) {
	path := filepath.Join(dir, MetricsFile)
	var kept []Metric
	var dropped []int
	var old []byte
	gone := false
	if keepUpTo >= 0 {
		_, err := os.Lstat(path)
		gone = errors.Is(err, os.ErrNotExist)
		kept, dropped, old = readMetricsLines(dir, keepUpTo)
	}
	if valPending {
		kept = slices.DeleteFunc(kept, func(m Metric) bool { return m.Kind == "epoch" && m.Step == keepUpTo })
	}
	if len(dropped) > 0 {
		// Rewriting would lose those lines for good: a hand-edited log,
		// or damage, is kept as it was beside the new one.
		if err := shards.WriteFileAtomic(path+".bak", old); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	for _, m := range kept {
		line, _ := json.Marshal(m)
		buf.Write(append(line, '\n'))
	}
	if err := shards.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &MetricsLog{path: path, f: f, all: kept, Dropped: dropped, Gone: gone}, nil
}

// readMetrics returns the lines of dir's metrics.jsonl up to step upTo;
// lines that do not read as a metric (a torn last line) are left out.
func readMetrics(dir string, upTo int64) []Metric {
	ms, _, _ := readMetricsLines(dir, upTo)
	return ms
}

// readMetricsLines is readMetrics that also gives the numbers of the
// lines left out as unreadable (not those past upTo, which a resume drops
// by design), and the file's bytes.
func readMetricsLines(dir string, upTo int64) (ms []Metric, dropped []int, b []byte) {
	b, err := regfile.ReadFile(filepath.Join(dir, MetricsFile), 0)
	if err != nil {
		return nil, nil, nil
	}
	n := 0
	for line := range bytes.Lines(b) {
		n++
		var m Metric
		// A line without a kind is not one train wrote ("{}", "null").
		if json.Unmarshal(line, &m) != nil || m.Kind == "" {
			if len(bytes.TrimSpace(line)) > 0 {
				dropped = append(dropped, n)
			}
			continue
		}
		if m.Step <= upTo {
			ms = append(ms, m)
		}
	}
	return ms, dropped, b
}

// Add appends one line.
func (l *MetricsLog) Add(m Metric) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("metrics.jsonl: %s step %d: %w", m.Kind, m.Step, err)
	}
	l.all = append(l.all, m)
	_, err = l.f.Write(append(b, '\n'))
	return err
}

// Sync flushes the lines written so far to disk.
func (l *MetricsLog) Sync() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	return nil
}

// All is every metric so far, including those kept from before a resume.
func (l *MetricsLog) All() []Metric { return l.all }

// Close closes the file.
func (l *MetricsLog) Close() error { return l.f.Close() }

// WritePlots draws loss.png (training loss by logged step and by epoch,
// and validation loss by epoch) and error.png (top-1 and top-5 validation
// error and the running training error, by epoch). Epochs without
// labelled validation images add no validation points.
func WritePlots(dir string, ms []Metric) error {
	var loss, eloss, vloss, top1, top5, train1 plotter.XYs
	for _, m := range ms {
		switch m.Kind {
		case "step":
			if !math.IsNaN(m.Loss) && !math.IsInf(m.Loss, 0) {
				loss = append(loss, plotter.XY{X: float64(m.Step), Y: m.Loss})
			}
		case "epoch":
			if m.TrainLoss > 0 {
				eloss = append(eloss, plotter.XY{X: float64(m.Step), Y: m.TrainLoss})
			}
			train1 = append(train1, plotter.XY{X: float64(m.Epoch), Y: 100 * m.TrainErr})
			if m.NoVal {
				continue
			}
			vloss = append(vloss, plotter.XY{X: float64(m.Step), Y: m.ValLoss})
			top1 = append(top1, plotter.XY{X: float64(m.Epoch), Y: 100 * m.Top1Err})
			top5 = append(top5, plotter.XY{X: float64(m.Epoch), Y: 100 * m.Top5Err})
		}
	}
	// An epoch's mean training loss gives loss.png a line even when
	// --log-every is longer than the run's epochs.
	if len(loss) > 0 || len(eloss) > 0 {
		p := plot.New()
		p.Title.Text = "Training loss"
		p.X.Label.Text = "step"
		p.Y.Label.Text = "cross-entropy"
		p.X.Tick.Marker = readableTicks{}
		p.Y.Tick.Marker = readableTicks{}
		if err := addLines(p, "train (per logged step)", loss, "train (epoch mean)", eloss, "validation (per epoch)", vloss); err != nil {
			return err
		}
		if err := savePlot(p, filepath.Join(dir, "loss.png")); err != nil {
			return err
		}
	}
	if len(top1) > 0 || len(train1) > 0 {
		p, err := errorPlot(top1, top5, train1)
		if err != nil {
			return err
		}
		if err := savePlot(p, filepath.Join(dir, "error.png")); err != nil {
			return err
		}
	}
	return nil
}

// errorPlot is error.png: top-1 and top-5 validation error and the
// running training error, by epoch.
func errorPlot(top1, top5, train1 plotter.XYs) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Error"
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "error (%)"
	p.X.Tick.Marker = readableTicks{whole: true}
	p.Y.Tick.Marker = readableTicks{upTo: 100} // the legend's room above is no error rate
	if err := addLines(p, "validation top-1", top1, "validation top-5", top5, "train top-1 (running)", train1); err != nil {
		return nil, err
	}
	// One epoch is one x: plot would widen it to -1..1, and a negative
	// epoch means nothing.
	p.X.Max = max(p.X.Max, p.X.Min+1)
	return p, nil
}

// readableTicks labels five to ten round values along an axis (steps of
// 1, 2, 2.5 or 5 times a power of ten), where plot's default gives two or
// three: a reader of loss.png should not have to guess which step a bend
// is at. whole keeps the labels whole numbers (epochs); upTo, when not 0,
// labels no value above it.
type readableTicks struct {
	whole bool
	upTo  float64
}

func (r readableTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return nil // plot widens a flat axis before asking; nothing else reaches here
	}
	raw := (hi - lo) / 10
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, f := range []float64{1, 2, 2.5, 5} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	if r.whole {
		step = math.Max(1, math.Round(step))
	}
	// Decimals enough for the step (2.5 needs one more than 2 does), so
	// that 0.1+0.2 prints as 0.3.
	dec := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	if math.Abs(step/math.Pow(10, -float64(dec))-math.Round(step/math.Pow(10, -float64(dec)))) > 1e-9 {
		dec++
	}
	if r.upTo != 0 {
		hi = min(hi, r.upTo)
	}
	var ts []plot.Tick
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9; i++ {
		v := i * step
		if v == 0 {
			v = 0 // not -0, which prints as "-0"
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', dec, 64)})
		if len(ts) > 100 {
			break
		}
	}
	return ts
}

func addLines(p *plot.Plot, args ...any) error {
	for i := 0; i+1 < len(args); i += 2 {
		xy := args[i+1].(plotter.XYs)
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = plotColors[(i/2)%len(plotColors)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(args[i].(string), l)
		if len(xy) < 40 {
			s, _ := plotter.NewScatter(xy)
			s.Color = l.Color
			p.Add(s)
		}
	}
	// The legend, top right, gets room of its own above the lines: no
	// corner is empty on every run (an early ImageNet run's errors stay
	// near 100%, and top-5 error lies low from the start), and there it
	// covered the first.
	p.Legend.Top = true
	if lo, hi := p.Y.Min, p.Y.Max; hi > lo {
		p.Y.Max = hi + 0.3*(hi-lo)
	}
	p.Add(plotter.NewGrid())
	return nil
}

var plotColors = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}, color.RGBA{44, 160, 44, 255}, color.RGBA{148, 103, 189, 255},
}

// WriteFilters draws first-layer filters (shape [O, C, K, K], C = 3) as a
// grid of colour patches, each scaled to its own min..max, like the paper's
// Figure 3, and writes it as PNG.
func WriteFilters(path string, w []float32, shape []int) error {
	if len(shape) != 4 || shape[1] != 3 || shape[2] != shape[3] {
		return fmt.Errorf("filters: want [O,3,K,K], have %v", shape)
	}
	o, k := shape[0], shape[2]
	cols := int(math.Ceil(math.Sqrt(float64(o) * 2)))
	if cols > o {
		cols = o
	}
	rows := (o + cols - 1) / cols
	scale := max(1, 48/k)
	cell := k*scale + 2
	img := image.NewRGBA(image.Rect(0, 0, cols*cell, rows*cell))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	per := 3 * k * k
	for f := 0; f < o; f++ {
		ws := w[f*per : (f+1)*per]
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range ws {
			lo, hi = min(lo, v), max(hi, v)
		}
		span := hi - lo
		if span == 0 {
			span = 1
		}
		x0, y0 := (f%cols)*cell+1, (f/cols)*cell+1
		for y := 0; y < k*scale; y++ {
			for x := 0; x < k*scale; x++ {
				px := func(c int) uint8 { return uint8(255 * (ws[c*k*k+(y/scale)*k+x/scale] - lo) / span) }
				img.SetRGBA(x0+x, y0+y, color.RGBA{px(0), px(1), px(2), 255})
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return err
	}
	return shards.WriteFileAtomic(path, b.Bytes())
}

// savePlot renders p as a 16×10 cm PNG and writes it atomically: a run
// killed while plotting leaves the last whole plot, never a torn one.
func savePlot(p *plot.Plot, path string) error {
	w, err := p.WriterTo(16*vg.Centimeter, 10*vg.Centimeter, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return err
	}
	return shards.WriteFileAtomic(path, buf.Bytes())
}
