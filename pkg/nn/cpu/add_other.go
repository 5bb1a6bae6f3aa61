//go:build !amd64

package cpu

// addTo adds s into d element by element: d[i] += s[i].
func addTo(d, s []float32) {
	d = d[:len(s)]
	for i := range s {
		d[i] += s[i]
	}
}
