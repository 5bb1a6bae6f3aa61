package gpu

import (
	"encoding/json"
	"math"
	"testing"
)

func TestJSONFloat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{1.5, `{"x":1.5}`},
		{2.5e-6, `{"x":2.5e-06}`},
		{0, `{"x":0}`},
		{math.NaN(), `{"x":"NaN"}`},
		{math.Inf(1), `{"x":"+Inf"}`},
		{math.Inf(-1), `{"x":"-Inf"}`},
	} {
		b, err := json.Marshal(struct {
			X JSONFloat `json:"x"`
		}{JSONFloat(tc.v)})
		if err != nil || string(b) != tc.want {
			t.Errorf("%v: %s, %v; want %s", tc.v, b, err, tc.want)
			continue
		}
		var back struct {
			X JSONFloat `json:"x"`
		}
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if got := float64(back.X); got != tc.v && !(math.IsNaN(got) && math.IsNaN(tc.v)) {
			t.Errorf("%s read back as %v", b, got)
		}
	}
	var f JSONFloat
	if json.Unmarshal([]byte(`"not a number"`), &f) == nil {
		t.Error("a string that is no number was read")
	}
}
