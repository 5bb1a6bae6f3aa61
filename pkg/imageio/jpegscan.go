package imageio

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// jpegScanWarning walks a sequential Huffman JPEG's entropy-coded data the
// way libjpeg's decoder reads it, without dequantizing or transforming,
// and returns the warning libjpeg gives of damage it decodes past, in
// libjpeg's words, or "" when there is none.
//
// It exists because image/jpeg decodes past the same damage without a
// word. A byte flipped mid-scan desynchronises the Huffman codes; the
// decoder then finishes the image early and libjpeg counts the bytes left
// over ("Corrupt JPEG data: 23 extraneous bytes before marker 0xd9"), or
// it runs into the next marker and fills with zeros ("premature end of
// data segment"). With libjpeg-turbo such a file is kept and reported as
// damaged; without it the same file must be reported too, or ingest's
// report and --strict would depend on which library the machine has.
// Its counts are of every whole byte the codes left unused; libjpeg's
// leave out what its bit buffer had already fetched when a scan ends (up
// to 7 bytes), so libjpeg says less, or nothing, of a desync that leaves
// only a few.
//
// Only baseline and extended sequential Huffman frames (SOF0, SOF1) are
// walked: progressive files keep their coefficients across scans, and
// image/jpeg refuses the other kinds. It reads only what image/jpeg has
// already decoded without error, so anything malformed that would stop
// it is answered with "" rather than a second diagnosis.
func jpegScanWarning(data []byte) string {
	w := scanWalker{data: data}
	return w.run()
}

// lookBits is the lookahead of huffDecoder's table: codes up to this
// long, nearly all of them in practice, are read in one step.
const lookBits = 10

// huffDecoder is one Huffman table in the canonical form of JPEG's
// Annex C. The walk needs no coefficient values, only how far each code
// moves the reader and the block, so its table holds those directly.
type huffDecoder struct {
	defined bool
	// fast, for a code of at most lookBits bits, by the bits that start
	// with it: how many bits the code and the value bits after it take
	// (drop, low 6 bits) and how far it moves the coefficient index
	// (advance, the bits above: run+1, 16 for ZRL, 64 for an end of
	// block). 0 where the code is longer or none.
	fast    [1 << lookBits]uint16
	maxcode [17]int32 // the largest code of each length, −1 for none
	mincode [17]int32
	valptr  [17]int32
	vals    [256]uint8
}

// badDC is the entry of a DC code whose value, a size, is past 16: no
// encoder writes one, and libjpeg-turbo refuses such a table.
const badDC = 0xFFFF

// fastEntry is the fast table's entry for a code of length l with value
// v in a DC (value = size) or an AC (value = run<<4 | size) table.
func fastEntry(l int, v uint8, isDC bool) uint16 {
	size := int(v & 15)
	if isDC {
		if v > 16 {
			return badDC
		}
		return uint16(l + int(v))
	}
	run := int(v >> 4)
	advance := run + 1
	if size == 0 {
		advance = 64 // end of block
		if run == 15 {
			advance = 16 // sixteen zeros
		}
	}
	return uint16(advance)<<6 | uint16(l+size)
}

// build fills h from a DHT's 16 counts and its values; false when the
// counts describe more codes than their lengths can hold.
func (h *huffDecoder) build(counts []byte, vals []byte, isDC bool) bool {
	*h = huffDecoder{defined: true}
	copy(h.vals[:], vals)
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.valptr[l], h.mincode[l] = k, code
		h.maxcode[l] = -1
		if n > 0 {
			h.maxcode[l] = code + n - 1
		}
		if code+n > 1<<l {
			return false
		}
		for i := int32(0); i < n && l <= lookBits; i++ {
			shift := lookBits - l
			e := fastEntry(l, vals[k+i], isDC)
			for s := int32(0); s < 1<<shift; s++ {
				h.fast[(code+i)<<shift|s] = e
			}
		}
		code += n
		k += n
		code <<= 1
	}
	return true
}

// slow reads a code longer than lookBits from the top of the n bits in
// acc, returning its fast-table entry, or false for a bit string that is
// no code (libjpeg's "bad Huffman code") or a DC size past 16.
func (h *huffDecoder) slow(acc uint64, n uint, isDC bool) (uint16, bool) {
	for l := uint(lookBits + 1); l <= 16; l++ {
		code := int32((acc >> (n - l)) & (1<<l - 1))
		if code <= h.maxcode[l] {
			e := fastEntry(int(l), h.vals[(h.valptr[l]+code-h.mincode[l])&0xFF], isDC)
			return e, e != badDC
		}
	}
	return 0, false
}

// bitReader reads entropy-coded bits as libjpeg's jpeg_fill_bit_buffer
// does: 0xFF 0x00 is a data 0xFF, any run of 0xFF fill bytes before either
// is swallowed, and any other marker stops the data. Past a marker it
// supplies zero bits, counting them, so that a code that really needed
// them is known (libjpeg's "premature end of data segment").
type bitReader struct {
	data  []byte
	pos   int    // the next byte to read
	acc   uint64 // the n bits read and not consumed, in its low bits
	n     uint
	zeros uint // trailing bits of acc that are zeros supplied past a marker
	// stuffed has bit 8i set where byte i of acc (from the low end) was
	// a stuffed 0xFF 0x00, two bytes of the file, for leftover's count.
	stuffed uint64
	marker  int  // where the marker (its first 0xFF) that stopped the reader starts, or −1
	short   bool // a consumed bit was one of the zeros
}

func (r *bitReader) reset(pos int) {
	*r = bitReader{data: r.data, pos: pos, marker: -1}
}

// fill tops acc up to more than 56 bits.
func (r *bitReader) fill() {
	// Eight bytes at a time while none is 0xFF: the common case.
	if r.marker < 0 && r.pos+8 <= len(r.data) {
		v := binary.BigEndian.Uint64(r.data[r.pos:])
		if x := ^v; (x-0x0101010101010101)&^x&0x8080808080808080 == 0 {
			k := (64 - r.n) / 8
			r.acc = r.acc<<(8*k) | v>>(64-8*k)
			r.stuffed <<= 8 * k
			r.n += 8 * k
			r.pos += int(k)
			return
		}
	}
	for r.n <= 56 {
		r.stuffed <<= 8
		if r.marker >= 0 {
			r.acc <<= 8
			r.n += 8
			r.zeros += 8
			continue
		}
		if r.pos >= len(r.data) {
			r.marker = len(r.data)
			continue
		}
		b := r.data[r.pos]
		if b == 0xFF {
			q := r.pos + 1
			for q < len(r.data) && r.data[q] == 0xFF {
				q++
			}
			if q >= len(r.data) || r.data[q] != 0 {
				r.marker = r.pos
				continue
			}
			r.pos = q + 1
			r.stuffed |= 1
		} else {
			r.pos++
		}
		r.acc = r.acc<<8 | uint64(b)
		r.n += 8
	}
}

// block reads one 8×8 block's codes: a DC difference, then AC run/size
// pairs to the end of block; false for a bit string that is no code.
// Indexes past 63 are not an error, as in libjpeg, whose natural-order
// table is padded for them. The state is kept in locals: this loop is the
// walk's whole cost.
func (r *bitReader) block(dc, ac *huffDecoder) bool {
	acc, n := r.acc, r.n
	if n < 32 {
		r.fill()
		acc, n = r.acc, r.n
	}
	e := dc.fast[(acc>>(n-lookBits))&(1<<lookBits-1)]
	if e == 0 {
		var ok bool
		if e, ok = dc.slow(acc, n, true); !ok {
			return false
		}
	}
	if e == badDC {
		return false
	}
	n -= uint(e & 63)
	for k := uint(1); k < 64; k += uint(e >> 6) {
		if n < 32 {
			r.acc, r.n = acc, n
			r.fill()
			acc, n = r.acc, r.n
		}
		e = ac.fast[(acc>>(n-lookBits))&(1<<lookBits-1)]
		if e == 0 {
			var ok bool
			if e, ok = ac.slow(acc, n, false); !ok {
				r.acc, r.n = acc, n
				return false
			}
		}
		n -= uint(e & 63)
	}
	r.acc, r.n = acc, n
	if n < r.zeros {
		r.short = true
	}
	return true
}

// leftover counts the file's bytes from the first whole byte the codes
// did not use to the marker after them, as libjpeg's next_marker counts
// what it skips (a stuffed 0xFF 0x00 is two, fill 0xFFs before a marker
// none), whatever the reader had fetched; it returns the count and the
// marker's position (len(data) when the data ends first).
func (r *bitReader) leftover() (n, marker int) {
	if r.n > r.zeros {
		k := (r.n - r.zeros) / 8
		mask := ^uint64(0)
		if k < 8 {
			mask = 1<<(8*k) - 1
		}
		n = int(k) + bits.OnesCount64((r.stuffed>>r.zeros)&mask)
	}
	if r.marker >= 0 {
		return n, r.marker
	}
	p := r.pos
	for p < len(r.data) {
		if r.data[p] != 0xFF {
			n++
			p++
			continue
		}
		q := p + 1
		for q < len(r.data) && r.data[q] == 0xFF {
			q++
		}
		if q < len(r.data) && r.data[q] == 0 {
			n += 2
			p = q + 1
			continue
		}
		return n, p
	}
	return n, len(r.data)
}

// markerAt reads the marker whose first 0xFF is at p, after any fill
// 0xFFs: its code (0 for a stuffed 0xFF 0x00, which is data) and the
// position after it; ok is false when the data ends first.
func markerAt(data []byte, p int) (code byte, next int, ok bool) {
	for p < len(data) && data[p] == 0xFF {
		p++
	}
	if p >= len(data) {
		return 0, p, false
	}
	return data[p], p + 1, true
}

type frameComp struct {
	id, h, v int
}

type scanWalker struct {
	data    []byte
	dc, ac  [4]huffDecoder
	comps   []frameComp
	hmax    int
	vmax    int
	w, h    int
	ri      int
	sawSOF  bool
	discard int // bytes skipped looking for a marker, as libjpeg's next_marker counts them
}

func (s *scanWalker) run() string {
	data := s.data
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return ""
	}
	pos := 2
	for {
		// Find the next marker as next_marker does, counting junk.
		for pos < len(data) && data[pos] != 0xFF {
			s.discard++
			pos++
		}
		code, next, ok := markerAt(data, pos)
		if !ok {
			return ""
		}
		if code == 0 { // 0xFF 0x00 between segments: junk too
			s.discard += 2
			pos = next
			continue
		}
		if s.discard > 0 {
			return fmt.Sprintf("Corrupt JPEG data: %d extraneous bytes before marker 0x%02x", s.discard, code)
		}
		pos = next
		switch {
		case code == 0xD9: // EOI
			return ""
		case code >= 0xD0 && code <= 0xD7, code == 0x01: // no length
			continue
		}
		if pos+2 > len(data) {
			return ""
		}
		segLen := int(data[pos])<<8 | int(data[pos+1])
		if segLen < 2 || pos+segLen > len(data) {
			return ""
		}
		seg := data[pos+2 : pos+segLen]
		pos += segLen
		switch code {
		case 0xC0, 0xC1:
			if !s.frame(seg) {
				return ""
			}
		case 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return "" // progressive, lossless, hierarchical or arithmetic: not walked
		case 0xC4:
			if !s.tables(seg) {
				return ""
			}
		case 0xDD:
			if len(seg) < 2 {
				return ""
			}
			s.ri = int(seg[0])<<8 | int(seg[1])
		case 0xDA:
			if !s.sawSOF {
				return ""
			}
			end, warn := s.scan(seg, pos)
			if warn != "" || end < 0 {
				return warn
			}
			pos = end
		}
	}
}

func (s *scanWalker) frame(seg []byte) bool {
	if len(seg) < 6 {
		return false
	}
	s.h = int(seg[1])<<8 | int(seg[2])
	s.w = int(seg[3])<<8 | int(seg[4])
	nf := int(seg[5])
	if seg[0] != 8 || s.w == 0 || s.h == 0 || nf < 1 || nf > 4 || len(seg) < 6+3*nf {
		return false
	}
	s.comps = s.comps[:0]
	s.hmax, s.vmax = 1, 1
	for i := range nf {
		c := seg[6+3*i:]
		h, v := int(c[1]>>4), int(c[1]&15)
		if h < 1 || h > 4 || v < 1 || v > 4 {
			return false
		}
		s.comps = append(s.comps, frameComp{id: int(c[0]), h: h, v: v})
		s.hmax, s.vmax = max(s.hmax, h), max(s.vmax, v)
	}
	s.sawSOF = true
	return true
}

func (s *scanWalker) tables(seg []byte) bool {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return false
		}
		tc, th := seg[0]>>4, seg[0]&15
		n := 0
		for _, c := range seg[1:17] {
			n += int(c)
		}
		if tc > 1 || th > 3 || n > 256 || len(seg) < 17+n {
			return false
		}
		t := &s.dc[th]
		if tc == 1 {
			t = &s.ac[th]
		}
		if !t.build(seg[1:17], seg[17:17+n], tc == 0) {
			return false
		}
		seg = seg[17+n:]
	}
	return true
}

// scanComp is a component of one scan: its sampling and its tables.
type scanComp struct {
	h, v   int
	bw, bh int // its blocks across and down, for a scan of it alone
	dc, ac *huffDecoder
}

// scan walks one scan whose entropy-coded data starts at pos. It returns
// where the marker after the scan starts, or a warning, or −1 to stop
// without one.
func (s *scanWalker) scan(seg []byte, pos int) (int, string) {
	if len(seg) < 1 {
		return -1, ""
	}
	ns := int(seg[0])
	if ns < 1 || ns > 4 || len(seg) < 1+2*ns+3 {
		return -1, ""
	}
	comps := make([]scanComp, 0, ns)
	for i := range ns {
		id, tabs := int(seg[1+2*i]), seg[2+2*i]
		var fc *frameComp
		for j := range s.comps {
			if s.comps[j].id == id {
				fc = &s.comps[j]
			}
		}
		td, ta := tabs>>4, tabs&15
		if fc == nil || td > 3 || ta > 3 || !s.dc[td].defined || !s.ac[ta].defined {
			return -1, ""
		}
		cw := (s.w*fc.h + s.hmax - 1) / s.hmax
		ch := (s.h*fc.v + s.vmax - 1) / s.vmax
		comps = append(comps, scanComp{h: fc.h, v: fc.v, bw: (cw + 7) / 8, bh: (ch + 7) / 8, dc: &s.dc[td], ac: &s.ac[ta]})
	}
	mcus := 0
	if ns == 1 {
		// A scan of one component codes its blocks one at a time.
		comps[0].h, comps[0].v = 1, 1
		mcus = comps[0].bw * comps[0].bh
	} else {
		mcus = ((s.w + 8*s.hmax - 1) / (8 * s.hmax)) * ((s.h + 8*s.vmax - 1) / (8 * s.vmax))
	}
	r := bitReader{data: s.data}
	r.reset(pos)
	rst := 0
	for m := 0; m < mcus; m++ {
		if s.ri > 0 && m > 0 && m%s.ri == 0 {
			// libjpeg's process_restart: what is left of the interval
			// is discarded, then the marker must be the next RST.
			at, code, next, warn := r.end()
			if warn != "" || at < 0 {
				return -1, warn
			}
			if code != byte(0xD0+rst) {
				return -1, fmt.Sprintf("Corrupt JPEG data: found marker 0x%02x instead of RST%d", code, rst)
			}
			rst = (rst + 1) & 7
			r.reset(next)
		}
		for ci := range comps {
			c := &comps[ci]
			for range c.h * c.v {
				if !r.block(c.dc, c.ac) {
					return -1, "Corrupt JPEG data: bad Huffman code"
				}
			}
		}
		if r.short {
			return -1, "Corrupt JPEG data: premature end of data segment"
		}
	}
	at, _, _, warn := r.end()
	return at, warn
}

// end finds the marker after a stretch of coded data (a scan or a restart
// interval): where it starts, its code and the position after it, or a
// warning naming the bytes the codes left unused before it; at is −1
// when the data ends first.
func (r *bitReader) end() (at int, code byte, next int, warn string) {
	n, at := r.leftover()
	code, next, ok := markerAt(r.data, at)
	if !ok {
		return -1, 0, 0, ""
	}
	if n > 0 {
		return -1, code, next, fmt.Sprintf("Corrupt JPEG data: %d extraneous bytes before marker 0x%02x", n, code)
	}
	return at, code, next, ""
}
