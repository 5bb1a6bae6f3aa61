package stats_test

import (
	"fmt"

	"github.com/alexnet-repro/alexnet/pkg/stats"
)

// Each worker owns an Accumulator; the results are merged once at the end,
// and the merge order does not matter.
func Example() {
	var w1, w2 stats.Accumulator
	w1.Add([]uint8{10, 20, 30, 20, 40, 60})
	w2.Add([]uint8{30, 60, 90})
	var total stats.Accumulator
	total.Merge(&w2)
	total.Merge(&w1)
	st, err := total.Stats()
	if err != nil {
		panic(err)
	}
	fmt.Printf("pixels %d, mean %.1f\n", st.Pixels, st.Mean)
	fmt.Printf("eigenvalues %.2f\n", st.EigVal)
	fmt.Printf("first eigenvector %.4f\n", [3]float64{st.EigVec[0][0], st.EigVec[1][0], st.EigVec[2][0]})
	// Output:
	// pixels 3, mean [20.0 40.0 60.0]
	// eigenvalues [933.33 0.00 0.00]
	// first eigenvector [0.2673 0.5345 0.8018]
}
