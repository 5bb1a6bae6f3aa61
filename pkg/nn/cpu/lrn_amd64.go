package cpu

// The AVX2 kernels work on the first len rounded down to a multiple of 8
// elements; the dispatchers finish the rest in Go. Slices other than the
// first must be at least as long as it.

//go:noescape
func sqAddAVX2(a, x []float32)

//go:noescape
func sqSubAVX2(a, x []float32)

//go:noescape
func subAVX2(a, x []float32)

//go:noescape
func lrnFwdAVX2(sum, x, y, inv, pw []float32, k, alpha float32)

//go:noescape
func mul3AVX2(t, d, y, inv []float32)

//go:noescape
func lrnBwdAVX2(g, d, pw, x, sum []float32, coef float32)

// bulk is how many leading elements of n an AVX2 kernel takes: none
// without AVX2.
func bulk(n int) int {
	if !useAVX2 {
		return 0
	}
	return n &^ 7
}

func sqAddRow(a, x []float32) {
	a = a[:len(x)]
	n := bulk(len(x))
	if n > 0 {
		sqAddAVX2(a[:n], x[:n])
	}
	sqAddGo(a[n:], x[n:])
}

func sqSubRow(a, x []float32) {
	a = a[:len(x)]
	n := bulk(len(x))
	if n > 0 {
		sqSubAVX2(a[:n], x[:n])
	}
	sqSubGo(a[n:], x[n:])
}

func subRow(a, x []float32) {
	a = a[:len(x)]
	n := bulk(len(x))
	if n > 0 {
		subAVX2(a[:n], x[:n])
	}
	subGo(a[n:], x[n:])
}

func lrnFwdRow(sum, x, y, inv, pw []float32, k, alpha float32) {
	x, y, inv, pw = x[:len(sum)], y[:len(sum)], inv[:len(sum)], pw[:len(sum)]
	n := bulk(len(sum))
	if n > 0 {
		lrnFwdAVX2(sum[:n], x[:n], y[:n], inv[:n], pw[:n], k, alpha)
	}
	lrnFwdGo(sum[n:], x[n:], y[n:], inv[n:], pw[n:], k, alpha)
}

func mul3Row(t, d, y, inv []float32) {
	d, y, inv = d[:len(t)], y[:len(t)], inv[:len(t)]
	n := bulk(len(t))
	if n > 0 {
		mul3AVX2(t[:n], d[:n], y[:n], inv[:n])
	}
	mul3Go(t[n:], d[n:], y[n:], inv[n:])
}

func lrnBwdRow(g, d, pw, x, sum []float32, coef float32) {
	d, pw, x, sum = d[:len(g)], pw[:len(g)], x[:len(g)], sum[:len(g)]
	n := bulk(len(g))
	if n > 0 {
		lrnBwdAVX2(g[:n], d[:n], pw[:n], x[:n], sum[:n], coef)
	}
	lrnBwdGo(g[n:], d[n:], pw[n:], x[n:], sum[n:], coef)
}
