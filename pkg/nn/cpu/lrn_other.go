//go:build !amd64

package cpu

func sqAddRow(a, x []float32) { sqAddGo(a, x) }
func sqSubRow(a, x []float32) { sqSubGo(a, x) }
func subRow(a, x []float32)   { subGo(a, x) }

func lrnFwdRow(sum, x, y, inv, pw []float32, k, alpha float32) {
	lrnFwdGo(sum, x, y, inv, pw, k, alpha)
}

func mul3Row(t, d, y, inv []float32) { mul3Go(t, d, y, inv) }

func lrnBwdRow(g, d, pw, x, sum []float32, coef float32) { lrnBwdGo(g, d, pw, x, sum, coef) }
