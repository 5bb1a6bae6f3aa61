package stats

import (
	"encoding/json"
	"errors"
)

// accumulatorJSON is the exact integer state of an Accumulator. ingest keeps
// one per finished shard, so a resumed run merges them instead of decoding
// the shards again, and the result stays bit-identical.
type accumulatorJSON struct {
	N   uint64    `json:"n"`
	S   [3]uint64 `json:"s"`
	Sq  [3]uint64 `json:"sq"`
	RG  uint64    `json:"rg"`
	RB  uint64    `json:"rb"`
	GB  uint64    `json:"gb"`
	Bad bool      `json:"bad,omitempty"`
}

// MarshalJSON writes the exact sums.
func (a *Accumulator) MarshalJSON() ([]byte, error) {
	return json.Marshal(accumulatorJSON{a.n, a.s, a.sq, a.rg, a.rb, a.gb, a.bad})
}

// UnmarshalJSON restores sums written by MarshalJSON.
func (a *Accumulator) UnmarshalJSON(b []byte) error {
	var j accumulatorJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	// N ≤ MaxPixels keeps 255²·N from overflowing, so the bounds below
	// are exact.
	if j.N > MaxPixels {
		return errors.New("stats: accumulator pixel count exceeds MaxPixels")
	}
	for c := 0; c < 3; c++ {
		if j.S[c] > 255*j.N || j.Sq[c] > 255*255*j.N {
			return errors.New("stats: accumulator sums exceed what its pixel count allows")
		}
	}
	if j.RG > 255*255*j.N || j.RB > 255*255*j.N || j.GB > 255*255*j.N {
		return errors.New("stats: accumulator cross products exceed what its pixel count allows")
	}
	*a = Accumulator{n: j.N, s: j.S, sq: j.Sq, rg: j.RG, rb: j.RB, gb: j.GB, bad: j.Bad}
	return nil
}
