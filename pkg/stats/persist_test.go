package stats

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

func TestAccumulatorJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pix := make([]uint8, 3*5000)
	for i := range pix {
		pix[i] = uint8(rng.Uint32())
	}
	var a Accumulator
	a.Add(pix)
	b, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	var back Accumulator
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != a {
		t.Fatalf("round trip changed the sums: %+v vs %+v", back, a)
	}
	if err := json.Unmarshal([]byte(`{"n":1,"s":[256,0,0]}`), &back); err == nil {
		t.Fatal("accepted impossible sums")
	}
}
