package imageio

import (
	"fmt"
	"iter"
	"math"
	"math/bits"
	"strings"
)

// jpegScanWarning reads a Huffman JPEG's entropy-coded data (sequential
// or progressive) as libjpeg-turbo's decoder reads it, without dequantizing or
// transforming, and returns the first warning libjpeg-turbo gives of
// damage it decodes past, in its words, or "" when it gives none.
//
// It exists because image/jpeg decodes past the same damage without a
// word. A byte flipped mid-scan desynchronises the Huffman codes; the
// decoder then finishes the image early and libjpeg counts the bytes left
// over ("Corrupt JPEG data: 23 extraneous bytes before marker 0xd9"), or
// runs into the next marker and fills with zeros ("premature end of data
// segment"). With libjpeg-turbo such a file is kept and reported as
// damaged; without it the same file must be reported the same way, or
// ingest's report and --strict would depend on the machine.
//
// "The same way" includes libjpeg-turbo's blind spots, so the emulation
// follows its reader (jdhuff.c) step for step rather than judging the
// data afresh:
//   - bytes its bit buffer had fetched when a scan ends are not counted
//     (up to 8), so junk shorter than that after the last code goes
//     unremarked, and none at all once the buffer has reached the marker;
//   - far from the end of the data it decodes on a fast path, which takes
//     a bit string that is no code for a zero without a warning; near the
//     end (under 512 bytes a block of the MCU) and with restart markers
//     it decodes on the careful path, which warns;
//   - bytes left in the buffer at a restart are counted, but reported only
//     with the next marker libjpeg has to search for.
//
// Progressive Huffman files (SOF2) have their scans read as jdphuff.c
// reads them: DC first and refinement scans, AC bands with their end-of-
// band runs, and AC refinements, whose correction bits depend on which
// coefficients earlier scans made nonzero, so that much is tracked (a
// bit a coefficient). They have no fast path. Each scan first has its
// progression checked as start_pass_phuff_decoder does, with its warning
// for a scan out of sequence ("Inconsistent progression sequence").
//
// Baseline, extended sequential and progressive Huffman frames (SOF0-2)
// are read; image/jpeg refuses the other kinds. The header's other
// warnings are libjpeg's too: an unknown JFIF major version, an unknown
// Adobe transform code, and a sequential scan whose spectral or
// approximation fields are not 0, 63, 0. The pure-Go path calls it on
// what image/jpeg decoded without error (jpegRefusal having refused what
// libjpeg stops at), so what is malformed beyond that is answered with
// "" rather than a second diagnosis.
func jpegScanWarning(data []byte) string {
	warn, _ := jpegScan(data)
	return warn
}

// jpegScan is jpegScanWarning with, where the walk met one before any
// warning, the error libjpeg-turbo stops at in the coded data itself
// (a progressive DC prediction past the range of an int), which
// jpegRefusal, reading no coded data, cannot see.
func jpegScan(data []byte) (warn, refusal string) {
	w := scanWalker{data: data}
	warn = w.run()
	return warn, w.refusal
}

// jpegRestartMisread reports whether data has restart markers in a scan
// of one component of several, which image/jpeg counts wrongly (it
// fails with "missing 0xff00 sequence" on such valid files), with the
// warning libjpeg-turbo would give of the file.
//
// misread holds only where libjpeg-turbo would read the file to its end
// marker, at most with a warning about a header, the frame's or a scan's
// (which it keeps the file after), so that a damaged or cut file is
// never called valid.
func jpegRestartMisread(data []byte) (warn string, misread bool) {
	w := scanWalker{data: data}
	warn = w.run()
	headerOnly := warn == "" || strings.HasPrefix(warn, "Warning: unknown JFIF") ||
		strings.HasPrefix(warn, "Unknown Adobe color transform") || warn == warnSOSParams ||
		strings.HasPrefix(warn, "Inconsistent progression sequence")
	if !headerOnly {
		return warn, false
	}
	if warn != "" {
		// The walk stopped at the header's warning: read on past it.
		w = scanWalker{data: data, quietHeader: true}
		if w.run() != "" {
			return warn, false
		}
	}
	return warn, w.restartSingle && w.sawEOI
}

const (
	// minGetBits is how far libjpeg-turbo's careful path fills its 64-bit
	// bit buffer (MIN_GET_BITS).
	minGetBits = 57
	// fastBytes is how many bytes a block of the MCU must be left in the
	// data for libjpeg-turbo to decode the MCU on its fast path (BUFSIZE).
	fastBytes = 512
)

// maxScans is how many scans TurboJPEG decodes before it refuses a file
// (TJFLAG_LIMITSCANS): image/jpeg has no limit, and a file of thousands
// of scans of a large image takes it minutes.
const maxScans = 500

const (
	warnBadCode   = "Corrupt JPEG data: bad Huffman code"
	warnHitMarker = "Corrupt JPEG data: premature end of data segment"
	warnEOF       = "Premature end of JPEG file"
	warnSOSParams = "Invalid SOS parameters for sequential JPEG"
)

func warnExtraneous(n int, code byte) string {
	return fmt.Sprintf("Corrupt JPEG data: %d extraneous bytes before marker 0x%02x", n, code)
}

// huffDecoder is one Huffman table in the canonical form of JPEG's Annex
// C, with libjpeg's 8-bit lookahead.
type huffDecoder struct {
	defined bool
	bad     bool        // a table libjpeg-turbo refuses when a scan uses it
	look    [256]uint16 // (length<<8 | value) for codes of ≤ 8 bits; 0 otherwise
	maxcode [18]int32   // the largest code of each length, −1 for none; [17] a sentinel
	mincode [17]int32
	valptr  [17]int32
	vals    [256]uint8
}

// build fills h from a DHT's 16 counts and its values, marking it bad
// where libjpeg-turbo's jpeg_make_d_derived_tbl refuses it: codes that
// overflow their length (or use the all-ones code), or a DC size past 15.
func (h *huffDecoder) build(counts []byte, vals []byte, isDC bool) {
	*h = huffDecoder{defined: true}
	copy(h.vals[:], vals)
	if isDC {
		for _, v := range vals {
			h.bad = h.bad || v > 15
		}
	}
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.valptr[l], h.mincode[l] = k, code
		h.maxcode[l] = -1
		if n > 0 {
			h.maxcode[l] = code + n - 1
		}
		if code+n >= 1<<l {
			h.bad = true
			return
		}
		for i := int32(0); i < n && l <= 8; i++ {
			shift := 8 - l
			for s := int32(0); s < 1<<shift; s++ {
				h.look[(code+i)<<shift|s] = uint16(l)<<8 | uint16(vals[k+i])
			}
		}
		code = (code + n) << 1
		k += n
	}
	h.maxcode[17] = 1 << 20
}

// value returns the symbol of the code of length l.
func (h *huffDecoder) value(l uint, code int32) int {
	return int(h.vals[(h.valptr[l]+code-h.mincode[l])&0xFF])
}

// bitReader is libjpeg-turbo's bit reader over the data: its bit buffer,
// where it is in the data, and the marker it has run into, if any
// (unread_marker).
type bitReader struct {
	data []byte
	pos  int    // next_input_byte
	acc  uint64 // the bit buffer: n bits in its low end
	n    uint   // bits_left
	hit  bool   // a marker stopped the reader
	code byte   // that marker's code
	next int    // the position after it
	warn string // the first warning
}

func (r *bitReader) warnOnce(w string) {
	if r.warn == "" {
		r.warn = w
	}
}

// fill is jpeg_fill_bit_buffer: bytes to at least minGetBits bits unless
// a marker comes first (0xFF 0x00 is a data 0xFF; 0xFF fill bytes before
// either are swallowed); past a marker, when fewer than nbits remain, a
// warning and zero bits. The end of the data is a marker too: libjpeg's
// memory source then supplies an EOI, with a warning of its own.
func (r *bitReader) fill(nbits uint) {
	for !r.hit && r.n < minGetBits {
		if r.pos >= len(r.data) {
			r.eof()
			break
		}
		c := r.data[r.pos]
		r.pos++
		if c == 0xFF {
			for r.pos < len(r.data) && r.data[r.pos] == 0xFF {
				r.pos++
			}
			if r.pos >= len(r.data) {
				r.eof()
				break
			}
			c2 := r.data[r.pos]
			r.pos++
			if c2 != 0 {
				r.hit, r.code, r.next = true, c2, r.pos
				break
			}
		}
		r.acc = r.acc<<8 | uint64(c)
		r.n += 8
	}
	if r.hit && nbits > r.n {
		r.warnOnce(warnHitMarker)
		r.acc <<= minGetBits - r.n
		r.n = minGetBits
	}
}

func (r *bitReader) eof() {
	r.warnOnce(warnEOF)
	r.hit, r.code, r.next = true, 0xD9, len(r.data)
}

// decodeSlow is HUFF_DECODE with jpeg_huff_decode: bits one at a time
// past the lookahead, a fill whenever they run out, and a warning for a
// bit string that is no code.
func (r *bitReader) decodeSlow(h *huffDecoder) int {
	l := uint(9)
	if r.n < 8 {
		r.fill(0)
		if r.n < 8 {
			l = 1
		}
	}
	if l == 9 {
		if e := h.look[(r.acc>>(r.n-8))&0xFF]; e != 0 {
			r.n -= uint(e >> 8)
			return int(e & 0xFF)
		}
	}
	if r.n < l {
		r.fill(l)
	}
	r.n -= l
	code := int32((r.acc >> r.n) & (1<<l - 1))
	for code > h.maxcode[l] {
		if r.n < 1 {
			r.fill(1)
		}
		r.n--
		code = code<<1 | int32((r.acc>>r.n)&1)
		l++
	}
	if l > 16 {
		r.warnOnce(warnBadCode)
		return 0
	}
	return h.value(l, code)
}

// blockFast reads one 8×8 block's codes on the fast path; false when a
// marker interrupts. Indexes past 63 are not an error, as in libjpeg,
// whose natural-order table is padded for them. It is decodeFast and
// fillFast with the reader's state in locals, which is most of the walk's
// speed.
func (r *bitReader) blockFast(dc, ac *huffDecoder) bool {
	data, pos, acc, n := r.data, r.pos, r.acc, r.n
	// fill is FILL_BIT_BUFFER_FAST.
	fill := func() bool {
		if n > 16 {
			return true
		}
		if pos+13 > len(data) {
			return false // not reached: the fast path keeps 512 bytes a block
		}
		for range 6 {
			c0 := data[pos]
			pos++
			acc = acc<<8 | uint64(c0)
			n += 8
			if c0 == 0xFF {
				if data[pos] != 0 {
					return false
				}
				pos++
			}
		}
		return true
	}
	h := dc
	for k := 0; k < 64; {
		if !fill() {
			return false
		}
		// HUFF_DECODE_FAST: a bit string that is no code takes 17 bits
		// and reads as 0.
		v := 0
		if e := h.look[(acc>>(n-8))&0xFF]; e != 0 {
			n -= uint(e >> 8)
			v = int(e & 0xFF)
		} else {
			l := uint(9)
			n -= l
			code := int32((acc >> n) & (1<<l - 1))
			for code > h.maxcode[l] {
				n--
				code = code<<1 | int32((acc>>n)&1)
				l++
			}
			if l <= 16 {
				v = h.value(l, code)
			}
		}
		size := uint(v) // the DC difference's size
		if k == 0 {
			k, h = 1, ac
		} else {
			var advance int
			var end bool
			if advance, size, end = acSymbol(v); end {
				break
			}
			k += advance
		}
		if size != 0 {
			if !fill() {
				return false
			}
			n -= size
		}
	}
	r.pos, r.acc, r.n = pos, acc, n
	return true
}

// acSymbol splits an AC symbol (run<<4 | size): how far it moves the
// coefficient index (run+1, or 16 for sixteen zeros), how many value
// bits follow it, and whether it ends the block.
func acSymbol(rs int) (advance int, size uint, end bool) {
	run, size := rs>>4, uint(rs&15)
	switch {
	case size != 0:
		return run + 1, size, false
	case run == 15:
		return 16, 0, false
	}
	return 0, 0, true
}

// blockSlow reads one 8×8 block's codes on the careful path.
func (r *bitReader) blockSlow(dc, ac *huffDecoder) {
	if s := uint(r.decodeSlow(dc)); s != 0 {
		if r.n < s {
			r.fill(s)
		}
		r.n -= s
	}
	for k := 1; k < 64; {
		advance, size, end := acSymbol(r.decodeSlow(ac))
		if end {
			break
		}
		k += advance
		if r.n < size {
			r.fill(size)
		}
		r.n -= size
	}
}

// nextMarker is libjpeg's next_marker from p: the bytes it skips (0xFF
// 0x00 counts two, 0xFF fill bytes none), the marker's code and the
// position after it; ok is false when the data ends first.
func nextMarker(data []byte, p int) (skipped int, code byte, next int, ok bool) {
	for {
		for p < len(data) && data[p] != 0xFF {
			skipped++
			p++
		}
		for p < len(data) && data[p] == 0xFF {
			p++
		}
		if p >= len(data) {
			return skipped, 0, p, false
		}
		if data[p] != 0 {
			return skipped, data[p], p + 1, true
		}
		skipped += 2
		p++
	}
}

// segmentAt reads what follows marker code, whose code byte ends before
// pos: nothing for a marker without a length (RSTn, TEM), else its
// segment's contents; and the position after it. false when a segment
// runs past the data.
func segmentAt(data []byte, code byte, pos int) (seg []byte, next int, ok bool) {
	if code >= 0xD0 && code <= 0xD7 || code == 0x01 {
		return nil, pos, true
	}
	if pos+2 > len(data) {
		return nil, 0, false
	}
	n := int(data[pos])<<8 | int(data[pos+1])
	if n < 2 || pos+n > len(data) {
		return nil, 0, false
	}
	return data[pos+2 : pos+n], pos + n, true
}

// huffTables calls fn with each table a DHT segment defines: its class
// (0 DC, 1 AC), its slot, its 16 counts and its values; false when the
// segment is malformed.
func huffTables(seg []byte, fn func(tc, th byte, counts, vals []byte)) bool {
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
		fn(tc, th, seg[1:17], seg[17:17+n])
		seg = seg[17+n:]
	}
	return true
}

type frameComp struct {
	id, h, v int
	tq       int // its quantization table
}

type scanWalker struct {
	data   []byte
	dc, ac [4]huffDecoder
	comps  []frameComp
	hmax   int
	vmax   int
	w, h   int
	ri     int
	sawSOF bool
	sawSOS bool
	scans  int
	// progressive: SOF2, whose scans jdphuff.c's routines read.
	progressive bool
	// coefBits is libjpeg's coef_bits, by frame component: the
	// approximation each coefficient has been coded to so far, −1 before
	// its first scan; what the progression warnings compare with.
	coefBits [4][64]int8
	// nonzero holds, by frame component and block, which AC coefficients
	// (bit k for zigzag index k) are nonzero so far: an AC refinement scan
	// reads a correction bit for each of those, so the walk must know
	// them. The values themselves do not steer the reading.
	nonzero [4][]uint64
	// restartSingle: a scan of one component of several, sampled more
	// than once per MCU, with restarts.
	restartSingle bool
	sawEOI        bool // the walk read the whole file to its end marker
	// quietHeader: go on past the warnings of the headers, the scans'
	// (progression and parameters) included (jpegRestartMisread).
	quietHeader bool
	jfif        bool // a JFIF APP0 segment
	adobe       bool // an Adobe APP14 segment, with its transform code
	xform       byte
	// refusal is the error libjpeg stopped the walk with, if any.
	refusal string
	// discard is libjpeg's discarded_bytes: what next_marker skipped and,
	// at a restart, the whole bytes left in the bit buffer; reported, and
	// reset, by the next marker search.
	discard int
}

// marker is next_marker from pos: the marker's code and the position
// after it, or a warning for the bytes skipped before it; ok is false
// when the data ends first.
func (s *scanWalker) marker(pos int) (code byte, next int, warn string, ok bool) {
	skipped, code, next, ok := nextMarker(s.data, pos)
	if !ok {
		return 0, 0, "", false
	}
	s.discard += skipped
	if s.discard != 0 {
		return code, next, warnExtraneous(s.discard, code), true
	}
	return code, next, "", true
}

func (s *scanWalker) run() string {
	data := s.data
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return ""
	}
	pos := 2
	var pending byte // a marker a scan's reader already read (unread_marker)
	for {
		code := pending
		if pending != 0 {
			pending = 0
		} else {
			c, next, warn, ok := s.marker(pos)
			if !ok {
				return warnEOF // the memory source supplies an EOI, and says so
			}
			if warn != "" {
				return warn
			}
			code, pos = c, next
		}
		if code == 0xD9 { // EOI
			s.sawEOI = true
			return ""
		}
		seg, next, ok := segmentAt(data, code, pos)
		if !ok {
			return ""
		}
		pos = next
		switch code {
		case 0xC0, 0xC1, 0xC2:
			if !s.frame(seg) {
				return ""
			}
			s.progressive = code == 0xC2
		case 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return "" // lossless, hierarchical or arithmetic: image/jpeg refuses them
		case 0xE0:
			// examine_app0: a JFIF segment whose major version is not 1.
			if len(seg) >= 14 && string(seg[:5]) == "JFIF\x00" {
				s.jfif = true
				if seg[5] != 1 && !s.quietHeader {
					return fmt.Sprintf("Warning: unknown JFIF revision number %d.%02d", seg[5], seg[6])
				}
			}
		case 0xEE:
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				s.adobe, s.xform = true, seg[11]
			}
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
			if s.scans++; s.scans > maxScans {
				return "" // libjpeg-turbo refuses the file (jpegRefusal)
			}
			if !s.sawSOS {
				// jpeg_read_header ends here, guessing the colour space.
				s.sawSOS = true
				if w := s.colorWarning(); w != "" && !s.quietHeader {
					return w
				}
			}
			next, c, warn := s.scan(seg, pos)
			if warn != "" || next < 0 {
				return warn
			}
			pos, pending = next, c
		}
	}
}

// colorWarning is default_decompress_parms's warning of an Adobe
// transform code it does not know (for three components only without a
// JFIF segment, which decides then).
func (s *scanWalker) colorWarning() string {
	known := true
	switch len(s.comps) {
	case 3:
		known = s.jfif || !s.adobe || s.xform <= 1
	case 4:
		known = !s.adobe || s.xform == 0 || s.xform == 2
	}
	if !known {
		return fmt.Sprintf("Unknown Adobe color transform code %d", s.xform)
	}
	return ""
}

func (s *scanWalker) frame(seg []byte) bool {
	if len(seg) < 6 {
		return false
	}
	s.h = int(seg[1])<<8 | int(seg[2])
	s.w = int(seg[3])<<8 | int(seg[4])
	nf := int(seg[5])
	// Past MaxPixels the decoders refuse the file before this is asked;
	// the bound also caps what the walk allocates (8 bytes a block of a
	// progressive file) and how long it loops, whatever it is given.
	if seg[0] != 8 || s.w == 0 || s.h == 0 || s.w*s.h > MaxPixels || nf < 1 || nf > 4 || len(seg) < 6+3*nf {
		return false
	}
	s.comps = s.comps[:0]
	s.hmax, s.vmax = 1, 1
	for i := range s.coefBits {
		for k := range s.coefBits[i] {
			s.coefBits[i][k] = -1
		}
		s.nonzero[i] = nil
	}
	for i := range nf {
		c := seg[6+3*i:]
		h, v := int(c[1]>>4), int(c[1]&15)
		if h < 1 || h > 4 || v < 1 || v > 4 {
			return false
		}
		s.comps = append(s.comps, frameComp{id: int(c[0]), h: h, v: v, tq: int(c[2])})
		s.hmax, s.vmax = max(s.hmax, h), max(s.vmax, v)
	}
	s.sawSOF = true
	return true
}

func (s *scanWalker) tables(seg []byte) bool {
	return huffTables(seg, func(tc, th byte, counts, vals []byte) {
		t := &s.dc[th]
		if tc == 1 {
			t = &s.ac[th]
		}
		t.build(counts, vals, tc == 0)
	})
}

// scanComp is a component of one scan: its sampling and its tables.
type scanComp struct {
	index  int // in the frame
	h, v   int
	bw, bh int // its blocks across and down, for a scan of it alone
	dc, ac *huffDecoder
}

// scanMode is which of libjpeg's MCU decoders reads a scan.
type scanMode int

const (
	sequential scanMode = iota // jdhuff.c's decode_mcu
	dcFirst                    // jdphuff.c's decode_mcu_DC_first
	acFirst                    // decode_mcu_AC_first
	dcRefine                   // decode_mcu_DC_refine
	acRefine                   // decode_mcu_AC_refine
)

// scan reads one scan whose coded data starts at pos, as decode_mcu does
// MCU by MCU. It returns the position after the marker that ends it and,
// when the reader had already read that marker, its code (else 0, and the
// position is where the marker search starts); or a warning; or −1 to
// stop without one.
func (s *scanWalker) scan(seg []byte, pos int) (int, byte, string) {
	if len(seg) < 1 {
		return -1, 0, ""
	}
	ns := int(seg[0])
	if ns < 1 || ns > 4 || len(seg) < 1+2*ns+3 {
		return -1, 0, ""
	}
	p := seg[1+2*ns:]
	ss, se, ah, al := int(p[0]), int(p[1]), int(p[2]>>4), uint(p[2]&15)
	mode := sequential
	if s.progressive {
		if badProgression(ns, ss, se, ah, int(al)) {
			return -1, 0, "" // jpegRefusal says why
		}
		dc := ss == 0
		switch {
		case dc && ah == 0:
			mode = dcFirst
		case dc:
			mode = dcRefine
		case ah == 0:
			mode = acFirst
		default:
			mode = acRefine
		}
	}
	comps := make([]scanComp, 0, ns)
	blocks := 0
	for i := range ns {
		id, tabs := int(seg[1+2*i]), seg[2+2*i]
		fi := -1
		for j := range s.comps {
			if s.comps[j].id == id {
				fi = j
			}
		}
		if fi < 0 {
			return -1, 0, ""
		}
		fc := &s.comps[fi]
		td, ta := tabs>>4, tabs&15
		// The tables the scan's decoder builds; libjpeg stops at one
		// missing or bogus (jpegRefusal), so the walk says nothing.
		needDC, needAC := mode == sequential || mode == dcFirst, mode == sequential || mode == acFirst || mode == acRefine
		if needDC && (td > 3 || !s.dc[td].defined || s.dc[td].bad) || needAC && (ta > 3 || !s.ac[ta].defined || s.ac[ta].bad) {
			return -1, 0, ""
		}
		cw := (s.w*fc.h + s.hmax - 1) / s.hmax
		ch := (s.h*fc.v + s.vmax - 1) / s.vmax
		c := scanComp{index: fi, h: fc.h, v: fc.v, bw: (cw + 7) / 8, bh: (ch + 7) / 8}
		if needDC {
			c.dc = &s.dc[td]
		}
		if needAC {
			c.ac = &s.ac[ta]
		}
		comps = append(comps, c)
		blocks += fc.h * fc.v
	}
	if mode == sequential {
		// start_pass_huff_decoder: a sequential scan must cover the
		// whole block at full precision, but files with zeros there
		// exist, so libjpeg only warns.
		if ss != 0 || se != 63 || p[2] != 0 {
			if !s.quietHeader {
				return -1, 0, warnSOSParams
			}
		}
	} else if w := s.progression(comps, ss, se, ah, int(al)); w != "" && !s.quietHeader {
		return -1, 0, w
	}
	mcus := 0
	if ns == 1 {
		// image/jpeg counts such a scan's restart intervals in units of
		// the component's h×v blocks: wrong only where that is not 1.
		s.restartSingle = s.restartSingle || (s.ri > 0 && len(s.comps) > 1 && comps[0].h*comps[0].v > 1)
		// A scan of one component codes its blocks one at a time.
		comps[0].h, comps[0].v = 1, 1
		blocks = 1
		mcus = comps[0].bw * comps[0].bh
	} else {
		mcus = ((s.w + 8*s.hmax - 1) / (8 * s.hmax)) * ((s.h + 8*s.vmax - 1) / (8 * s.vmax))
	}
	var nonzero []uint64
	if mode == acFirst || mode == acRefine {
		ci := comps[0].index
		if s.nonzero[ci] == nil {
			s.nonzero[ci] = make([]uint64, mcus)
		}
		nonzero = s.nonzero[ci]
	}
	r := bitReader{data: s.data, pos: pos}
	rst := 0
	eobrun := 0
	// lastDC is a DC first scan's prediction by scan component, which
	// decode_mcu_DC_first refuses to carry past an int's range.
	var lastDC [4]int64
	for m := 0; m < mcus; m++ {
		if s.ri > 0 && m > 0 && m%s.ri == 0 {
			// process_restart: the whole bytes left in the buffer join
			// the count of the next marker search, which happens only
			// if the reader has not already read the marker.
			s.discard += int(r.n / 8)
			code, next := r.code, r.next
			if !r.hit {
				var warn string
				var ok bool
				if code, next, warn, ok = s.marker(r.pos); !ok || warn != "" {
					return -1, 0, warn
				}
			}
			if code != byte(0xD0+rst) {
				return -1, 0, fmt.Sprintf("Corrupt JPEG data: found marker 0x%02x instead of RST%d", code, rst)
			}
			rst = (rst + 1) & 7
			r = bitReader{data: s.data, pos: next}
			eobrun = 0
			lastDC = [4]int64{}
		}
		switch mode {
		case sequential:
			fast := s.ri == 0 && !r.hit && len(s.data)-r.pos >= fastBytes*blocks
			if fast {
				saved := r
				if !r.mcuFast(comps) {
					r = saved
					fast = false
				}
			}
			if !fast {
				r.mcuSlow(comps)
			}
		case dcFirst:
			for ci := range comps {
				for range comps[ci].h * comps[ci].v {
					size := uint(r.decodeSlow(comps[ci].dc))
					diff := 0
					if size != 0 {
						diff = r.bits(size)
						if diff < 1<<(size-1) { // HUFF_EXTEND
							diff += -1<<size + 1
						}
					}
					lastDC[ci] += int64(diff)
					if lastDC[ci] > math.MaxInt32 || lastDC[ci] < math.MinInt32 {
						if r.warn == "" {
							s.refusal = "DCT coefficient out of range" // JERR_BAD_DCT_COEF
						}
						return -1, 0, r.warn
					}
				}
			}
		case dcRefine:
			// A bit a block, each read as it comes: when the buffer
			// fills decides what a scan's end leaves uncounted.
			r.bitByBit(blocks)
		case acFirst:
			eobrun = r.blockACFirst(comps[0].ac, &nonzero[m], ss, se, al, eobrun)
		case acRefine:
			eobrun = r.blockACRefine(comps[0].ac, &nonzero[m], ss, se, eobrun)
		}
		if r.warn != "" {
			return -1, 0, r.warn
		}
	}
	if r.hit {
		// The buffer read the marker: no search, so no count (what the
		// buffer holds is never counted at the end of a scan).
		return r.next, r.code, ""
	}
	return r.pos, 0, ""
}

// badProgression reports the progressive scan parameters
// start_pass_phuff_decoder refuses: a DC scan beyond coefficient 0; an AC
// band out of order, past 63, or of more than one component; a
// refinement whose Al is not Ah-1; Al past 13.
func badProgression(ns, ss, se, ah, al int) bool {
	if ss == 0 {
		return se != 0 || ah != 0 && al != ah-1 || al > 13
	}
	return ss > se || se > 63 || ns != 1 || ah != 0 && al != ah-1 || al > 13
}

// progression is start_pass_phuff_decoder's bookkeeping of which
// coefficients have been coded to which approximation, with its warning
// for a scan out of order (an AC scan before the component's DC scan, or
// a refinement whose Ah is not the last Al of its coefficients); libjpeg
// decodes the scan regardless.
func (s *scanWalker) progression(comps []scanComp, ss, se, ah, al int) string {
	warn := ""
	for _, c := range comps {
		done := &s.coefBits[c.index]
		if ss > 0 && done[0] < 0 && warn == "" {
			warn = fmt.Sprintf("Inconsistent progression sequence for component %d coefficient 0", c.index)
		}
		for k := ss; k <= se; k++ {
			if ah != max(int(done[k]), 0) && warn == "" {
				warn = fmt.Sprintf("Inconsistent progression sequence for component %d coefficient %d", c.index, k)
			}
			done[k] = int8(al)
		}
	}
	return warn
}

func (r *bitReader) mcuFast(comps []scanComp) bool {
	for ci := range comps {
		c := &comps[ci]
		for range c.h * c.v {
			if !r.blockFast(c.dc, c.ac) {
				return false
			}
		}
	}
	return true
}

func (r *bitReader) mcuSlow(comps []scanComp) {
	for ci := range comps {
		c := &comps[ci]
		for range c.h * c.v {
			r.blockSlow(c.dc, c.ac)
		}
	}
}

// bitByBit drops n bits read one at a time, as libjpeg reads correction
// bits (CHECK_BIT_BUFFER(1) each): the buffer refills only when empty,
// which decides what it holds, uncounted, when the scan ends.
func (r *bitReader) bitByBit(n int) {
	for n > 0 {
		if r.n == 0 {
			r.fill(1)
		}
		m := min(uint(n), r.n)
		r.n -= m
		n -= int(m)
	}
}

// bits is CHECK_BIT_BUFFER and GET_BITS: the next n bits (n ≤ 16).
func (r *bitReader) bits(n uint) int {
	if r.n < n {
		r.fill(n)
	}
	r.n -= n
	return int((r.acc >> r.n) & (1<<n - 1))
}

// zigzagBit is the bit of a block's nonzero mask for zigzag index k.
// libjpeg's natural-order table is padded with 16 entries of 63 for
// damaged runs past the block's end, which land on coefficient 63.
func zigzagBit(k int) uint64 {
	return 1 << min(k, 63)
}

// blockACFirst is decode_mcu_AC_first on one block: the band's codes,
// and which coefficients they make nonzero (a value is stored shifted
// left by Al into 16 bits, so a large one can store as zero). It returns
// the EOB run left after the block.
func (r *bitReader) blockACFirst(ac *huffDecoder, nz *uint64, ss, se int, al uint, eobrun int) int {
	if eobrun > 0 {
		return eobrun - 1
	}
	for k := ss; k <= se; k++ {
		rs := r.decodeSlow(ac)
		run, size := rs>>4, uint(rs&15)
		switch {
		case size != 0:
			k += run
			v := r.bits(size)
			if v < 1<<(size-1) { // HUFF_EXTEND
				v += -1<<size + 1
			}
			if int16(v<<al) != 0 {
				*nz |= zigzagBit(k)
			} else {
				*nz &^= zigzagBit(k)
			}
		case run == 15:
			k += 15
		default:
			eobrun = 1 << run
			if run != 0 {
				eobrun += r.bits(uint(run))
			}
			return eobrun - 1
		}
		if r.warn != "" {
			return 0
		}
	}
	return 0
}

// blockACRefine is decode_mcu_AC_refine on one block: a correction bit
// for each coefficient already nonzero in the band, passed over on the
// way to each newly nonzero one (whose size must be 1: libjpeg warns of
// any other), and after an end of band for the rest of it.
func (r *bitReader) blockACRefine(ac *huffDecoder, nz *uint64, ss, se, eobrun int) int {
	k := ss
	if eobrun == 0 {
		for ; k <= se; k++ {
			rs := r.decodeSlow(ac)
			run, size := rs>>4, rs&15
			if size != 0 {
				if size != 1 {
					r.warnOnce(warnBadCode)
					return 0
				}
				r.bits(1) // the new coefficient's sign
			} else if run != 15 {
				eobrun = 1 << run
				if run != 0 {
					eobrun += r.bits(uint(run))
				}
				break
			}
			// Over the nonzero coefficients, with their correction
			// bits, and run zero ones, to the one the code is for (or
			// past the band's end, in damaged data).
			band := bandMask(k, se)
			zeros := ^*nz & band
			for ; run > 0 && zeros != 0; run-- {
				zeros &= zeros - 1
			}
			to := se + 1
			if zeros != 0 {
				to = bits.TrailingZeros64(zeros)
			}
			r.bitByBit(bits.OnesCount64(*nz & band & (1<<to - 1)))
			k = to
			if size != 0 {
				*nz |= zigzagBit(k)
			}
			if r.warn != "" {
				return 0
			}
		}
	}
	if eobrun > 0 {
		if k <= se {
			r.bitByBit(bits.OnesCount64(*nz & bandMask(k, se)))
		}
		eobrun--
	}
	return eobrun
}

// bandMask has the bits of zigzag indexes lo to hi (≤ 63) set.
func bandMask(lo, hi int) uint64 {
	return (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
}

// jpegWholeSampling reports whether data's frame samples every component
// a whole number of times fewer than the most sampled one, across and
// down: the samplings libjpeg's upsampler decodes (the others it refuses
// as fractional).
func jpegWholeSampling(data []byte) bool {
	var w scanWalker
	for sg := range jpegSegments(data) {
		switch {
		case sg.code == 0xDA:
			return false // no frame before the first scan
		case sg.code >= 0xC0 && sg.code <= 0xCF && sg.code != 0xC4 && sg.code != 0xC8 && sg.code != 0xCC:
			if !w.frame(sg.seg) {
				return false
			}
			for _, c := range w.comps {
				if w.hmax%c.h != 0 || w.vmax%c.v != 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

// jpegSegment is a marker segment met walking a JPEG's markers: its code,
// its contents, where its marker starts, and where it ends: for a scan,
// past its coded data, at the next marker that is not a restart marker
// (or the data's end).
type jpegSegment struct {
	code    byte
	seg     []byte
	at, end int
}

// jpegSegments walks data's marker segments from SOI as libjpeg's marker
// reader finds them, passing over each scan's coded data, for the checks
// that read the markers only; it ends at EOI, at the data's end, or at a
// segment that runs past it. (scanWalker.run reads the coded data, so it
// walks the markers itself.)
func jpegSegments(data []byte) iter.Seq[jpegSegment] {
	return func(yield func(jpegSegment) bool) {
		if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
			return
		}
		for pos := 2; ; {
			_, code, next, ok := nextMarker(data, pos)
			if !ok || code == 0xD9 {
				return
			}
			seg, after, ok := segmentAt(data, code, next)
			if !ok {
				return
			}
			sg := jpegSegment{code: code, seg: seg, at: next - 2, end: after}
			if code == 0xDA {
				sg.end = len(data)
				for p := after; ; {
					_, c, nx, ok := nextMarker(data, p)
					if !ok {
						break
					}
					if c < 0xD0 || c > 0xD7 {
						sg.end = nx - 2 // its 0xFF, where the next search starts
						break
					}
					p = nx
				}
			}
			if !yield(sg) {
				return
			}
			pos = sg.end
		}
	}
}

// jpegRefusal returns, in its words, the error libjpeg-turbo stops with on
// a JPEG that image/jpeg decodes, or "": a quantization table not yet
// defined at a component's first scan; a Huffman table it refuses
// (overfull, or a DC size past 15) used by a scan; in a sequential file,
// a second scan after a first that held every component; in a
// progressive one, a successive approximation past 13, or any of the
// scan parameters libjpeg refuses, in its words rather than image/jpeg's;
// and more than 500 scans, TurboJPEG's limit (image/jpeg has none, and
// decodes every scan over the whole image). image/jpeg checks most of
// these not at all, and words the rest otherwise, so without this the
// pure-Go path would keep files the library skips, or say why in other
// words. It reads every segment, skipping the coded data, whatever the
// warnings before (libjpeg stops at these even after one), and decodes
// nothing; what stops libjpeg inside the coded data is jpegScan's.
func jpegRefusal(data []byte) string {
	var (
		frame             scanWalker // its frame() reads the SOF
		latched           [4]bool    // by frame component: its table is latched
		huffSeen, huffBad [2][4]bool
		quant             [4]bool
		progressive       bool
		scans             int
		whole             bool // the first scan held every component
		h                 huffDecoder
	)
	for sg := range jpegSegments(data) {
		seg := sg.seg
		switch sg.code {
		case 0xC0, 0xC1, 0xC2:
			if !frame.frame(seg) {
				return ""
			}
			progressive, latched = sg.code == 0xC2, [4]bool{}
		case 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return "" // image/jpeg refuses these itself
		case 0xC4:
			if !huffTables(seg, func(tc, th byte, counts, vals []byte) {
				h.build(counts, vals, tc == 0)
				huffSeen[tc][th], huffBad[tc][th] = true, h.bad
			}) {
				return ""
			}
		case 0xDB:
			for len(seg) >= 1 {
				pq, tq := seg[0]>>4, seg[0]&15
				size := 1 + 64*(1+int(pq))
				switch {
				case pq > 1 || tq > 3:
					return "" // image/jpeg refuses it
				case len(seg) == 1:
					// A table's first byte with nothing after it:
					// image/jpeg takes the segment as complete (the
					// table left undefined, so flat grey), libjpeg
					// reads 64 values on past its end and stops.
					return "Bogus marker length"
				case len(seg) < size:
					return "" // image/jpeg refuses it ("DQT has wrong length")
				}
				quant[tq] = true
				seg = seg[size:]
			}
		case 0xDA:
			if len(seg) < 1 || len(seg) < 1+2*int(seg[0]) {
				return ""
			}
			ns := int(seg[0])
			if scans++; scans > 1 && whole {
				return "Didn't expect more than one scan"
			}
			for i := range ns {
				id := int(seg[1+2*i])
				for j, c := range frame.comps {
					// latch_quant_tables, at the component's first scan.
					if c.id == id && !latched[j] {
						if c.tq > 3 || !quant[c.tq] {
							return fmt.Sprintf("Quantization table 0x%02x was not defined", c.tq)
						}
						latched[j] = true
					}
				}
			}
			// The entropy decoder's start_pass: a progressive scan's
			// parameters, then the tables the scan decodes with (a
			// progressive DC scan the DC table, a refinement of it none, an
			// AC scan the AC table; a sequential scan both).
			useDC, useAC := true, true
			if progressive {
				if len(seg) < 1+2*ns+3 {
					return ""
				}
				p := seg[1+2*ns:]
				ss, se, ah, al := int(p[0]), int(p[1]), int(p[2]>>4), int(p[2]&15)
				if badProgression(ns, ss, se, ah, al) {
					return fmt.Sprintf("Invalid progressive parameters Ss=%d Se=%d Ah=%d Al=%d", ss, se, ah, al)
				}
				useDC, useAC = ss == 0 && ah == 0, ss != 0
			}
			for i := range ns {
				td, ta := seg[2+2*i]>>4, seg[2+2*i]&15
				if useDC && td < 4 && huffSeen[0][td] && huffBad[0][td] || useAC && ta < 4 && huffSeen[1][ta] && huffBad[1][ta] {
					return "Bogus Huffman table definition"
				}
			}
			// TurboJPEG's scan limit (tjflagLimitScans), checked once the
			// scan has started.
			if scans > maxScans {
				return fmt.Sprintf("Progressive JPEG image has more than %d scans", maxScans)
			}
			whole = whole || (!progressive && scans == 1 && ns == len(frame.comps))
		}
	}
	return ""
}
