package shards

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/klauspost/compress/fse"
)

// grad-huff bands are huff0 Compress4X blocks: zstd's Huffman literals
// format (RFC 8878 §4.2.1). huff0's decoder yields one symbol per table
// lookup; this one looks up 11 bits and yields two symbols whenever both
// codes fit in them, which for residuals of about 3.7 bits a pixel is
// most lookups. The bytes written are the same, so the format is unchanged;
// TestHuffMatchesHuff0 and FuzzHuff hold the two decoders to the same
// output.

const huffMaxLog = 11 // zstd's limit on Huffman code lengths

// huffRoundBytes is the most a round of the fast loops stores: five
// lookups of two bytes each. A round starts only this far from the end of
// its stream's quarter.
const huffRoundBytes = 10

// huffPairs selects this decoder over huff0's where its fast loops run;
// tests and benchmarks switch it to compare the two.
var huffPairs = useHuffAsm

// huffDecoder holds the tables of the last block's Huffman code.
type huffDecoder struct {
	log    uint8
	single [1 << huffMaxLog]uint16 // symbol | nbits<<8, indexed by the next log bits
	// double packs nbits | sym1<<8 | sym2<<16 | count<<24: the next 11
	// bits decode to count (1 or 2) symbols using nbits of them.
	double  [1 << huffMaxLog]uint32
	weights [256]uint8
	fse     fse.Scratch
}

// readTable parses a Huffman table description from the front of in,
// builds the decoding tables, and returns what follows the description.
// It accepts exactly the descriptions huff0.ReadTable accepts.
func (h *huffDecoder) readTable(in []byte) ([]byte, error) {
	if len(in) <= 1 {
		return nil, errors.New("input too small for table")
	}
	head := int(in[0])
	in = in[1:]
	var n int // weights given; the last symbol's is implied
	if head >= 128 {
		n = head - 127
		size := (n + 1) / 2
		if size > len(in) {
			return nil, errors.New("input too small for table")
		}
		for i := 0; i < n; i += 2 {
			v := in[i/2]
			h.weights[i], h.weights[i+1] = v>>4, v&15 // n ≤ 128: in range
		}
		in = in[size:]
	} else {
		if head > len(in) {
			return nil, fmt.Errorf("input too small for table, want %d bytes, have %d", head, len(in))
		}
		if head == 0 || in[0]&15+5 > 6 {
			return nil, errors.New("corrupt input: weights tableLog too big")
		}
		h.fse.DecompressLimit = 255
		h.fse.Out = h.weights[:0]
		w, err := fse.Decompress(in[:head], &h.fse)
		h.fse.Out = nil
		if err != nil {
			return nil, fmt.Errorf("fse decompress returned: %w", err)
		}
		if len(w) > 255 {
			return nil, errors.New("corrupt input: output table too large")
		}
		if len(w) > 0 && &w[0] != &h.weights[0] {
			copy(h.weights[:], w)
		}
		n = len(w)
		in = in[head:]
	}
	var rank [16]uint32
	total := uint32(0)
	for _, w := range h.weights[:n] {
		if w > huffMaxLog {
			return nil, errors.New("corrupt input: weight too large")
		}
		rank[w]++
		if w > 0 {
			total += 1 << (w - 1)
		}
	}
	if total == 0 {
		return nil, errors.New("corrupt input: weights zero")
	}
	log := bits.Len32(total) // the implied last weight rounds total up to 2^log
	if log > huffMaxLog {
		return nil, errors.New("corrupt input: tableLog too big")
	}
	rest := uint32(1)<<log - total
	if rest&(rest-1) != 0 {
		return nil, errors.New("corrupt input: last value not power of two")
	}
	last := uint8(bits.Len32(rest))
	h.weights[n] = last
	n++
	rank[last]++
	if rank[1] < 2 || rank[1]&1 != 0 {
		return nil, errors.New("corrupt input: min elt size, even check failed")
	}
	h.log = uint8(log)

	// Symbols of weight w take 2^(w−1) consecutive slots, lighter weights
	// (longer codes) first, and by symbol within a weight.
	var start [16]uint32
	next := uint32(0)
	for w := 1; w <= log; w++ {
		start[w] = next
		next += rank[w] << (w - 1)
	}
	for s, w := range h.weights[:n] {
		if w == 0 {
			continue
		}
		e := uint16(s) | uint16(uint8(log)+1-w)<<8
		slots := h.single[start[w] : start[w]+1<<(w-1)]
		for i := range slots {
			slots[i] = e
		}
		start[w] += 1 << (w - 1)
	}
	// The fast loops look up 11 bits whatever the code's log, so the
	// double table has 2^11 slots: a slot decodes a second symbol when the
	// first code leaves enough of the 11 bits for the second's code.
	shift := huffMaxLog - log
	for i := range 1 << huffMaxLog {
		e1 := h.single[i>>shift]
		n1 := int(e1 >> 8)
		d := uint32(n1) | uint32(e1&0xff)<<8 | 1<<24
		if n1 < huffMaxLog {
			e2 := h.single[((i<<n1)&(1<<huffMaxLog-1))>>shift]
			if n2 := int(e2 >> 8); n1+n2 <= huffMaxLog {
				d = uint32(n1+n2) | uint32(e1&0xff)<<8 | uint32(e2&0xff)<<16 | 2<<24
			}
		}
		h.double[i] = d
	}
	return in, nil
}

// huffStream is a window on one backward bitstream: the 8 bytes at
// src[off:] as a little-endian word, of which the top 64−used bits are
// still to be read.
type huffStream struct {
	val  uint64
	off  int
	used uint
}

// decode4X decodes a 4-stream body (6-byte jump table, then four streams
// coding dst's four quarters) into dst, which must be exactly the block's
// size. Any stream that does not end exactly at its quarter's end, with
// every bit read, is corrupt.
func (h *huffDecoder) decode4X(dst, src []byte) error {
	if h.log == 0 {
		return errors.New("no table loaded")
	}
	if len(src) < 6+4 {
		return errors.New("input too small")
	}
	var starts [5]int
	starts[0] = 6
	for i := range 3 {
		starts[i+1] = starts[i] + int(binary.LittleEndian.Uint16(src[2*i:]))
		if starts[i+1] >= len(src) {
			return errors.New("truncated input (or invalid offset)")
		}
	}
	starts[4] = len(src)
	every := (len(dst) + 3) / 4
	var ends [4]int
	for i := range ends {
		ends[i] = min((i+1)*every, len(dst))
	}

	var st [4]huffStream
	var pos [4]int
	fast := useHuffAsm
	for i := range st {
		a, b := starts[i], starts[i+1]
		if b <= a || src[b-1] == 0 {
			return errors.New("corrupt stream, did not find end of stream")
		}
		pos[i] = i * every
		// The window: the stream's last 8 bytes, less the zero bits above
		// the end marker and the marker. A shorter stream starts empty and
		// the careful loop skips the marker itself.
		st[i] = huffStream{off: b, used: 64}
		if b-a < 8 {
			fast = false
		}
	}
	if fast {
		c := huffLoop{src: &src[0], out: &dst[0], tbl: &h.double[0]}
		for i := range st {
			b := starts[i+1]
			c.off[i] = int64(b - 8)
			c.used[i] = uint64(8 - (bits.Len8(src[b-1]) - 1))
			c.pos[i] = int64(pos[i])
			c.lim[i] = int64(ends[i] - huffRoundBytes)
			c.low[i] = int64(starts[i] + 8)
		}
		huffLoop4BMI2(&c)
		// The four stop together when the first runs out of room; streams
		// of longer codes are behind it. Each goes on alone.
		for i := range st {
			one := huffLoop{src: c.src, out: c.out, tbl: c.tbl}
			one.off[0], one.used[0], one.pos[0], one.lim[0], one.low[0] = c.off[i], c.used[i], c.pos[i], c.lim[i], c.low[i]
			huffLoop1BMI2(&one)
			c.off[i], c.used[i], c.pos[i] = one.off[0], one.used[0], one.pos[0]
		}
		// Back to a window for the careful loop, moved down by the whole
		// bytes read but never below the stream's first byte: the bytes
		// under it are another stream's.
		for i := range st {
			off, used := int(c.off[i]), uint(c.used[i])
			k := min(int(used>>3), off-starts[i])
			off -= k
			used -= 8 * uint(k)
			st[i] = huffStream{val: binary.LittleEndian.Uint64(src[off:]) << used, off: off, used: used}
			pos[i] = int(c.pos[i])
		}
	}
	for i := range st {
		var err error
		if pos[i], err = h.tail(dst, src, st[i], pos[i], starts[i], ends[i], !fast); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
	}
	return nil
}

// tail finishes one stream a symbol at a time with bounds checks, from a
// window s: the top 64−s.used bits of s.val are unread, and so are the
// bytes src[start:s.off]. With marker set the window is empty and the
// stream's last byte begins with the end marker, to be skipped.
func (h *huffDecoder) tail(dst, src []byte, s huffStream, p, start, end int, marker bool) (int, error) {
	log := h.log
	val := s.val
	if s.used >= 64 {
		val = 0
	}
	have := 64 - int(min(s.used, 64)) // valid bits at the top of val
	off := s.off
	fill := func() {
		for have <= 56 && off > start {
			off--
			val |= uint64(src[off]) << uint(56-have)
			have += 8
		}
	}
	fill()
	if marker {
		skip := 8 - (bits.Len8(src[s.off-1]) - 1)
		val <<= uint(skip)
		have -= skip
	}
	for have > 0 || off > start {
		fill()
		e := h.single[val>>(64-log)]
		n := int(e >> 8)
		if n > have {
			return p, errors.New("corruption detected: a code runs past the stream")
		}
		if p >= end {
			return p, errors.New("corruption detected: the stream codes more than its quarter")
		}
		dst[p] = uint8(e)
		p++
		val <<= uint(n)
		have -= n
	}
	if p != end {
		return p, fmt.Errorf("corruption detected: the stream ends %d bytes short of its quarter", end-p)
	}
	return p, nil
}
