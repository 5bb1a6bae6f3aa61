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

func FuzzAccumulatorJSON(f *testing.F) {
	f.Add([]byte(`{"n":2,"s":[3,4,5],"sq":[9,16,25],"rg":12,"rb":15,"gb":20}`))
	f.Add([]byte(`{"n":18446744073709551615}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Accumulator
		if json.Unmarshal(b, &a) == nil && a.Count() > 0 {
			a.Stats() // must not panic on any accepted state
		}
	})
}
