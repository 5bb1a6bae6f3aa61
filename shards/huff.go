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
// lookup; this one looks up 11 bits and yields as many symbols, up to
// three, as have their codes in them: residual codes average about 3.7
// bits. The bytes written are the same, so the format is unchanged;
// TestHuffMatchesHuff0 and FuzzHuff hold the two decoders to the same
// output.

const huffMaxLog = 11 // zstd's limit on Huffman code lengths

// huffRoundBytes is the most a round of the fast loops stores: five
// lookups advance three bytes at most, and the last stores four. A round
// starts only this far from the end of its stream's quarter.
const huffRoundBytes = 16

// huffOwn selects this decoder over huff0's where its fast loops run;
// tests and benchmarks switch it to compare the two.
var huffOwn = useHuffAsm

// huffDecoder holds the tables of the last block's Huffman code.
type huffDecoder struct {
	log uint8
	// multi packs sym1 | sym2<<8 | sym3<<16 | (nbits | count<<6)<<24:
	// the next 11 bits decode to count (1 to 3) symbols using nbits.
	multi   [1 << huffMaxLog]uint32
	ext     [1 << huffMaxLog]uint32 // nbits | symbol<<8: one code, by the next 11 bits
	fit     [huffMaxLog + 1]int
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

	// At log bits, symbols of weight w take 2^(w−1) consecutive slots,
	// lighter weights (longer codes) first, and by symbol within a weight.
	// ext is that table looked up by 11 bits (each slot 2^(11−log) times):
	// nbits | symbol<<8.
	var start [16]uint32
	next := uint32(0)
	for w := 1; w <= log; w++ {
		start[w] = next
		next += rank[w] << (w - 1)
	}
	shift := huffMaxLog - log
	// Codes shorten as the index grows: fit[r] is the first 11-bit index
	// whose code has at most r bits, the weight log+1−r.
	for r := range h.fit {
		switch w := log + 1 - r; {
		case w > log:
			h.fit[r] = 1 << huffMaxLog
		case w <= 1:
			h.fit[r] = 0
		default:
			h.fit[r] = int(start[w]) << shift
		}
	}
	for s, w := range h.weights[:n] {
		if w == 0 {
			continue
		}
		x := uint32(uint8(log)+1-w) | uint32(s)<<8
		ext := h.ext[start[w]<<shift : (start[w]+1<<(w-1))<<shift]
		for i := range ext {
			ext[i] = x
		}
		start[w] += 1 << (w - 1)
	}
	h.fill()
	return in, nil
}

// fill writes the multi-symbol table from ext. The 11 bits of an index
// hold a first code of n1 bits, then bits that, shifted up by n1, index
// the second code, and so on. Codes shorten as an index grows (fit), so in
// any run of slots that share their first k codes the next code fits from
// one slot on: before it the entries stop at k symbols.
func (h *huffDecoder) fill() {
	const all = 1<<huffMaxLog - 1
	multi := &h.multi
	for i := 0; i <= all; {
		x1 := h.ext[i]
		m1 := x1 & 0xff
		size := 1 << (huffMaxLog - m1) // the slots of this first code
		blk := multi[i : i+size]
		e1 := x1>>8 | (m1|1<<6)<<24
		j := min(size, (h.fit[huffMaxLog-m1]+1<<m1-1)>>m1)
		for k := range blk[:j] {
			blk[k] = e1
		}
		for j < size { // second codes
			x2 := h.ext[j<<m1]
			m2 := m1 + x2&0xff
			run := 1 << (huffMaxLog - m2)
			sub := blk[j : j+run]
			e2 := e1 + (x2>>8)<<8 + (x2&0xff+1<<6)<<24
			t := min(run, (h.fit[huffMaxLog-m2]+1<<m2-1)>>m2)
			for k := range sub[:t] {
				sub[k] = e2
			}
			for ; t < run; t++ { // third codes
				x3 := h.ext[(t<<m2)&all]
				sub[t] = e2 + (x3>>8)<<16 + (x3&0xff+1<<6)<<24
			}
			j += run
		}
		i += size
	}
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
// every bit read, is corrupt. With need < len(dst), only dst[:need] is
// wanted: streams of later quarters are left unread, and the one that
// codes byte need−1 stops after it.
func (h *huffDecoder) decode4X(dst, src []byte, need int) error {
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
	var pos, stop [4]int
	var unread [4]bool // codes only bytes past need
	fast := useHuffAsm && len(dst) > 0
	for i := range st {
		pos[i], stop[i] = i*every, ends[i]
		if need < len(dst) {
			stop[i] = min(ends[i], max(need, pos[i]))
			if unread[i] = stop[i] == pos[i]; unread[i] {
				continue
			}
		}
		a, b := starts[i], starts[i+1]
		if b <= a || src[b-1] == 0 {
			return errors.New("corrupt stream, did not find end of stream")
		}
		// The window: the stream's last 8 bytes, less the zero bits above
		// the end marker and the marker. A shorter stream starts empty and
		// the careful loop skips the marker itself.
		st[i] = huffStream{off: b, used: 64}
		if b-a < 8 {
			fast = false
		}
	}
	if fast {
		c := huffLoop{src: &src[0], out: &dst[0], tbl: &h.multi[0]}
		for i := range st {
			b := starts[i+1]
			c.off[i] = int64(b - 8)
			c.used[i] = uint64(8 - (bits.Len8(src[b-1]) - 1))
			c.pos[i] = int64(pos[i])
			c.lim[i] = int64(min(ends[i]-huffRoundBytes, stop[i]-1))
			c.low[i] = int64(starts[i] + 8)
		}
		huffLoop4BMI2(&c)
		// The four stop together when the first runs out of room; streams
		// of longer codes are behind it. They go on in pairs while two
		// have room, then alone.
		for {
			var room [4]int
			left := room[:0]
			for i := range st {
				if c.pos[i] <= c.lim[i] && c.off[i] >= c.low[i] {
					left = append(left, i)
				}
			}
			if len(left) == 0 {
				break
			}
			sub := huffLoop{src: c.src, out: c.out, tbl: c.tbl}
			for k, i := range left[:min(2, len(left))] {
				sub.off[k], sub.used[k], sub.pos[k], sub.lim[k], sub.low[k] = c.off[i], c.used[i], c.pos[i], c.lim[i], c.low[i]
			}
			if len(left) >= 2 {
				huffLoop2BMI2(&sub)
			} else {
				huffLoop1BMI2(&sub)
			}
			for k, i := range left[:min(2, len(left))] {
				c.off[i], c.used[i], c.pos[i] = sub.off[k], sub.used[k], sub.pos[k]
			}
		}
		// Back to a window for the careful loop, moved down by the whole
		// bytes read but never below the stream's first byte: the bytes
		// under it are another stream's.
		for i := range st {
			if unread[i] {
				continue
			}
			off, used := int(c.off[i]), uint(c.used[i])
			k := min(int(used>>3), off-starts[i])
			off -= k
			used -= 8 * uint(k)
			st[i] = huffStream{val: binary.LittleEndian.Uint64(src[off:]) << used, off: off, used: used}
			pos[i] = int(c.pos[i])
		}
	}
	for i := range st {
		if unread[i] {
			continue
		}
		var err error
		if pos[i], err = h.tail(dst, src, st[i], pos[i], starts[i], ends[i], stop[i], !fast); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
	}
	return nil
}

// tail finishes one stream a symbol at a time with bounds checks, from a
// window s: the top 64−s.used bits of s.val are unread, and so are the
// bytes src[start:s.off]. With marker set the window is empty and the
// stream's last byte begins with the end marker, to be skipped. With
// stop < end it returns at stop, the rest of the stream unread.
func (h *huffDecoder) tail(dst, src []byte, s huffStream, p, start, end, stop int, marker bool) (int, error) {
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
		e := h.ext[val>>(64-huffMaxLog)]
		n := int(e & 0xff)
		if n > have {
			return p, errors.New("corruption detected: a code runs past the stream")
		}
		if p >= stop {
			if stop < end {
				return p, nil
			}
			return p, errors.New("corruption detected: the stream codes more than its quarter")
		}
		dst[p] = uint8(e >> 8)
		p++
		val <<= uint(n)
		have -= n
	}
	if p != stop {
		return p, fmt.Errorf("corruption detected: the stream ends %d bytes short of its quarter", end-p)
	}
	return p, nil
}
