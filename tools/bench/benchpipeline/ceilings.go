package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/alexnet-repro/alexnet/shards"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

// ceilingBench times, on one goroutine under GOMAXPROCS 1 and in images
// per CPU-second, what the pipeline's hardest steps cost alone on the
// input's train records: the codec's entropy stage alone (zstd, or Huffman
// for grad-huff; the unfilter skipped), the full record decode, and copying
// the raw pixels.
// It loads the records once, so that each round of the benchmark can
// measure them again right beside its pipeline runs.
type ceilingBench struct {
	recs []shards.Record
	raw  [][]byte // each record decoded, for the memcpy ceiling
	img  []byte
	dec  *shards.Decoder
}

func newCeilingBench(dir string, meta *shards.Meta) (*ceilingBench, error) {
	c := &ceilingBench{}
	var buf []byte
	for _, path := range meta.ShardPaths(dir, "train") {
		r, err := shards.Open(path)
		if err != nil {
			return nil, err
		}
		for i := range r.Len() {
			var rec shards.Record
			if buf, err = r.ReadRecord(i, &rec, buf); err != nil {
				r.Close()
				return nil, err
			}
			rec.Payload = append([]byte(nil), rec.Payload...)
			c.recs = append(c.recs, rec)
		}
		r.Close()
	}
	if len(c.recs) == 0 {
		return nil, fmt.Errorf("%s: no train records", dir)
	}
	var err error
	if c.dec, err = shards.NewDecoder(); err != nil {
		return nil, err
	}
	// Decode every record once into its own buffer: the memcpy ceiling
	// then reads distinct memory per image, as the pipeline would.
	maxRaw := 0
	c.raw = make([][]byte, len(c.recs))
	for i := range c.recs {
		r := &c.recs[i]
		maxRaw = max(maxRaw, r.W*r.H*3)
		c.raw[i] = make([]byte, r.W*r.H*3)
		if err := c.dec.Decode(c.raw[i], r.Codec, r.Payload, r.W, r.H); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.img = make([]byte, maxRaw)
	return c, nil
}

func (c *ceilingBench) Close() { c.dec.Close() }

// measureCeilings loads the records, measures them once and lets them go.
func measureCeilings(dir string, meta *shards.Meta, minTime time.Duration) (ceilings, error) {
	cb, err := newCeilingBench(dir, meta)
	if err != nil {
		return ceilings{}, err
	}
	defer cb.Close()
	return cb.measure(minTime)
}

// measure runs each ceiling loop for at least minTime.
func (c *ceilingBench) measure(minTime time.Duration) (ceilings, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// loop runs f over the records, round after round, for at least
	// minTime, and returns images per CPU-second, the measure the
	// pipeline's one-core rate is compared in: on a shared machine wall
	// time would count the moments other processes held the core.
	loop := func(f func(r *shards.Record, i int) error) (float64, error) {
		n := 0
		t0, c0 := time.Now(), benchstat.CPUTime()
		for time.Since(t0) < minTime {
			for i := range c.recs {
				if err := f(&c.recs[i], i); err != nil {
					return 0, err
				}
			}
			n += len(c.recs)
		}
		return float64(n) / (benchstat.CPUTime() - c0).Seconds(), nil
	}
	var out ceilings
	var err error
	if out.InflateOnly, err = loop(func(r *shards.Record, _ int) error {
		_, err := c.dec.Inflate(r.Codec, r.Payload, r.W, r.H)
		return err
	}); err != nil {
		return out, err
	}
	if out.FullDecode, err = loop(func(r *shards.Record, _ int) error {
		return c.dec.Decode(c.img[:r.W*r.H*3], r.Codec, r.Payload, r.W, r.H)
	}); err != nil {
		return out, err
	}
	out.Memcpy, err = loop(func(_ *shards.Record, i int) error {
		copy(c.img, c.raw[i])
		return nil
	})
	return out, err
}
