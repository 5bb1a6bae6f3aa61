package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"math"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Digest fingerprints a sequence of batches, in order: two runs that
// deliver the same batches (positions, crops, labels, IDs, lighting
// offsets) in the same order have the same Sum, whatever their worker
// counts. It is a SHA-256 over, per batch, the position and crop count
// and, per crop, its label, ID, offsets and the CRC-32C of its pixels.
// Hashing the pixels through a CRC keeps the digest cheap enough to run
// beside the pipeline (CRC-32C runs at about 15 GB/s in hardware, SHA-256
// at under 1 GB/s, and a batch holds 19 MB); a change confined to one
// crop's pixels escapes with probability 2⁻³².
type Digest struct {
	h       hash.Hash
	batches int
	crops   int
	scratch []byte
}

// NewDigest returns an empty Digest.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

// Add folds one delivered batch in.
func (d *Digest) Add(s *Slot) {
	b := d.scratch[:0]
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Pos.Epoch))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Pos.Batch))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.N))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Crop))
	for j := range s.N {
		b = binary.LittleEndian.AppendUint32(b, uint32(s.Labels[j]))
		b = binary.LittleEndian.AppendUint64(b, s.IDs[j])
		for _, o := range s.Offsets[j] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(o))
		}
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(s.Image(j), castagnoli))
	}
	d.h.Write(b)
	d.scratch = b
	d.batches++
	d.crops += s.N
}

// Batches and Crops count what has been added.
func (d *Digest) Batches() int { return d.batches }
func (d *Digest) Crops() int   { return d.crops }

// Sum is the digest so far, in hex.
func (d *Digest) Sum() string { return hex.EncodeToString(d.h.Sum(nil)) }
