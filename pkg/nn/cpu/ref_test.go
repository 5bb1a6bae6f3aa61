package cpu

import (
	"math"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
)

// This file is the reference the native ops are checked against: the
// definitions, written as plainly as possible, in float64.

func refConv(x []float64, n int, g convGeom, w, b []float64) []float64 {
	y := make([]float64, n*g.outSize())
	cg, og := g.C/g.Groups, g.O/g.Groups
	for s := 0; s < n; s++ {
		for o := 0; o < g.O; o++ {
			gi := o / og
			for oy := 0; oy < g.OH; oy++ {
				for ox := 0; ox < g.OW; ox++ {
					sum := b[o]
					for ci := 0; ci < cg; ci++ {
						c := gi*cg + ci
						for ki := 0; ki < g.K; ki++ {
							for kj := 0; kj < g.K; kj++ {
								iy, ix := oy*g.S-g.P+ki, ox*g.S-g.P+kj
								if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
									continue
								}
								sum += w[((o*cg+ci)*g.K+ki)*g.K+kj] * x[((s*g.C+c)*g.H+iy)*g.W+ix]
							}
						}
					}
					y[((s*g.O+o)*g.OH+oy)*g.OW+ox] = sum
				}
			}
		}
	}
	return y
}

// refConvBack returns dx, dw, db for y = conv(x) given dy.
func refConvBack(x []float64, n int, g convGeom, w, dy []float64) (dx, dw, db []float64) {
	dx = make([]float64, n*g.inSize())
	dw = make([]float64, len(w))
	db = make([]float64, g.O)
	cg, og := g.C/g.Groups, g.O/g.Groups
	for s := 0; s < n; s++ {
		for o := 0; o < g.O; o++ {
			gi := o / og
			for oy := 0; oy < g.OH; oy++ {
				for ox := 0; ox < g.OW; ox++ {
					d := dy[((s*g.O+o)*g.OH+oy)*g.OW+ox]
					db[o] += d
					for ci := 0; ci < cg; ci++ {
						c := gi*cg + ci
						for ki := 0; ki < g.K; ki++ {
							for kj := 0; kj < g.K; kj++ {
								iy, ix := oy*g.S-g.P+ki, ox*g.S-g.P+kj
								if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
									continue
								}
								wi := ((o*cg+ci)*g.K+ki)*g.K + kj
								xi := ((s*g.C+c)*g.H+iy)*g.W + ix
								dw[wi] += d * x[xi]
								dx[xi] += d * w[wi]
							}
						}
					}
				}
			}
		}
	}
	return dx, dw, db
}

// refLRN is b_c = a_c / (k + α/n Σ_{|j−c|≤n/2} a_j²)^β.
func refLRN(x []float64, n, c, plane int, p alexnet.LRNParams) []float64 {
	y := make([]float64, len(x))
	h := p.Size / 2
	for s := 0; s < n; s++ {
		for ch := 0; ch < c; ch++ {
			for i := 0; i < plane; i++ {
				var sum float64
				for j := max(0, ch-h); j <= min(c-1, ch+h); j++ {
					v := x[(s*c+j)*plane+i]
					sum += v * v
				}
				idx := (s*c+ch)*plane + i
				y[idx] = x[idx] / math.Pow(p.K+p.Alpha/float64(p.Size)*sum, p.Beta)
			}
		}
	}
	return y
}

func refPool(x []float64, n, c, h, w, k, s, p int) []float64 {
	oh, ow := (h+2*p-k)/s+1, (w+2*p-k)/s+1
	y := make([]float64, n*c*oh*ow)
	for pl := 0; pl < n*c; pl++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				best := math.Inf(-1)
				for ki := 0; ki < k; ki++ {
					for kj := 0; kj < k; kj++ {
						iy, ix := oy*s-p+ki, ox*s-p+kj
						if iy >= 0 && iy < h && ix >= 0 && ix < w {
							best = max(best, x[(pl*h+iy)*w+ix])
						}
					}
				}
				y[(pl*oh+oy)*ow+ox] = best
			}
		}
	}
	return y
}

func refFC(x []float64, n, in, out int, w, b []float64) []float64 {
	y := make([]float64, n*out)
	for s := 0; s < n; s++ {
		for o := 0; o < out; o++ {
			sum := b[o]
			for i := 0; i < in; i++ {
				sum += w[o*in+i] * x[s*in+i]
			}
			y[s*out+o] = sum
		}
	}
	return y
}

// refLoss is the mean over samples of log Σ exp(z) − z[label].
func refLoss(z []float64, labels []int32, k int) float64 {
	var total float64
	for s, lab := range labels {
		row := z[s*k : (s+1)*k]
		var sum float64
		for _, v := range row {
			sum += math.Exp(v)
		}
		total += math.Log(sum) - row[lab]
	}
	return total / float64(len(labels))
}

// refForward runs spec on n samples. masks gives each dropout layer's
// multipliers; a dropout layer without one is the identity.
func refForward(spec alexnet.Spec, params map[string][]float64, x []float64, n int, masks map[string][]float32) []float64 {
	c, h, w := spec.Input[0], spec.Input[1], spec.Input[2]
	cur := x
	for _, l := range spec.Layers {
		switch l.Kind {
		case alexnet.Conv:
			g := convGeom{C: c, H: h, W: w, O: l.Out, K: l.K, S: l.Stride, P: l.Pad, Groups: max(1, l.Groups)}
			g.OH, g.OW = (h+2*l.Pad-l.K)/l.Stride+1, (w+2*l.Pad-l.K)/l.Stride+1
			cur = refConv(cur, n, g, params[l.Name+".weight"], params[l.Name+".bias"])
			c, h, w = g.O, g.OH, g.OW
		case alexnet.ReLU:
			out := make([]float64, len(cur))
			for i, v := range cur {
				out[i] = max(v, 0)
			}
			cur = out
		case alexnet.LRN:
			cur = refLRN(cur, n, c, h*w, l.LRN)
		case alexnet.MaxPool:
			cur = refPool(cur, n, c, h, w, l.K, l.Stride, l.Pad)
			h, w = (h+2*l.Pad-l.K)/l.Stride+1, (w+2*l.Pad-l.K)/l.Stride+1
		case alexnet.Dropout:
			if m, ok := masks[l.Name]; ok {
				out := make([]float64, len(cur))
				for i, v := range cur {
					out[i] = v * float64(m[i])
				}
				cur = out
			}
		case alexnet.Flatten:
			c, h, w = c*h*w, 1, 1
		case alexnet.FC:
			cur = refFC(cur, n, c*h*w, l.Out, params[l.Name+".weight"], params[l.Name+".bias"])
			c, h, w = l.Out, 1, 1
		}
	}
	return cur
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
