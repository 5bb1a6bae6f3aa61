package gpu

import (
	"encoding/json"
	"math"
	"strconv"
)

// JSONFloat is a float64 that survives JSON when it is not finite. A NaN
// loss or error is the likeliest result of a first GPU run that goes wrong,
// and encoding/json refuses NaN and ±Inf, which lost the very record that
// would have shown it. They are written as the strings "NaN", "+Inf" and
// "-Inf", which strconv.ParseFloat and Python's float() both read.
type JSONFloat float64

func (f JSONFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *JSONFloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		*f = JSONFloat(v)
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = JSONFloat(v)
	return nil
}
