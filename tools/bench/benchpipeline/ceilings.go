package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/alexnet-repro/alexnet/shards"
)

// measureCeilings times, on one goroutine under GOMAXPROCS 1 and in
// images per CPU-second, what the
// pipeline's hardest steps cost alone on the input's train records: zstd
// decompression of the payloads (the codec's unfilter skipped), the full
// record decode, and copying the raw pixels.
func measureCeilings(dir string, meta *shards.Meta, minTime time.Duration) (ceilings, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var recs []shards.Record
	var buf []byte
	for _, path := range meta.ShardPaths(dir, "train") {
		r, err := shards.Open(path)
		if err != nil {
			return ceilings{}, err
		}
		for i := range r.Len() {
			var rec shards.Record
			if buf, err = r.ReadRecord(i, &rec, buf); err != nil {
				r.Close()
				return ceilings{}, err
			}
			rec.Payload = append([]byte(nil), rec.Payload...)
			recs = append(recs, rec)
		}
		r.Close()
	}
	if len(recs) == 0 {
		return ceilings{}, fmt.Errorf("%s: no train records", dir)
	}
	maxRaw := 0
	for _, r := range recs {
		maxRaw = max(maxRaw, r.W*r.H*3)
	}

	// loop runs f over the records, round after round, for at least
	// minTime, and returns images per CPU-second, the measure the
	// pipeline's one-core rate is compared in: on a shared machine wall
	// time would count the moments other processes held the core.
	loop := func(f func(r *shards.Record, i int) error) (float64, error) {
		n := 0
		t0, c0 := time.Now(), cpuTime()
		for time.Since(t0) < minTime {
			for i := range recs {
				if err := f(&recs[i], i); err != nil {
					return 0, err
				}
			}
			n += len(recs)
		}
		return float64(n) / (cpuTime() - c0).Seconds(), nil
	}

	var c ceilings
	// The same decoder settings as shards.Decoder, so the ceiling is the
	// fastest zstd alone, not a slower configuration of it.
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<28), zstd.WithDecoderLowmem(false))
	if err != nil {
		return c, err
	}
	defer zd.Close()
	dst := make([]byte, 0, maxRaw)
	if c.ZstdOnly, err = loop(func(r *shards.Record, _ int) error {
		out, err := zd.DecodeAll(r.Payload, dst[:0])
		if err == nil && len(out) != r.W*r.H*3 {
			err = fmt.Errorf("record %s decompressed to %d bytes", r.Name, len(out))
		}
		return err
	}); err != nil {
		return c, err
	}

	dec, err := shards.NewDecoder()
	if err != nil {
		return c, err
	}
	defer dec.Close()
	// Decode every record once into its own buffer: the memcpy ceiling
	// then reads distinct memory per image, as the pipeline would.
	raw := make([][]byte, len(recs))
	for i := range recs {
		r := &recs[i]
		raw[i] = make([]byte, r.W*r.H*3)
		if err := dec.Decode(raw[i], r.Codec, r.Payload, r.W, r.H); err != nil {
			return c, err
		}
	}
	img := make([]byte, maxRaw)
	if c.FullDecode, err = loop(func(r *shards.Record, _ int) error {
		return dec.Decode(img[:r.W*r.H*3], r.Codec, r.Payload, r.W, r.H)
	}); err != nil {
		return c, err
	}
	c.Memcpy, err = loop(func(_ *shards.Record, i int) error {
		copy(img, raw[i])
		return nil
	})
	return c, err
}
