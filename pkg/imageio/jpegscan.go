package imageio

import (
	"fmt"
	"strings"
)

// jpegScanWarning reads a sequential Huffman JPEG's entropy-coded data
// as libjpeg-turbo's decoder reads it, without dequantizing or
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
// Only baseline and extended sequential Huffman frames (SOF0, SOF1) have
// their scans read; a progressive file's header is read up to its first
// scan (junk between segments, the JFIF version, the Adobe transform),
// and image/jpeg refuses the other kinds. The header's other warnings
// are libjpeg's too: an unknown JFIF major version, an unknown Adobe
// transform code, and a sequential scan whose spectral or
// approximation fields are not 0, 63, 0. The pure-Go path calls it on
// what image/jpeg decoded without error (jpegRefusal having refused what
// libjpeg stops at), so what is malformed beyond that is answered with
// "" rather than a second diagnosis.
func jpegScanWarning(data []byte) string {
	w := scanWalker{data: data}
	return w.run()
}

// jpegRestartMisread reports whether data has restart markers in a scan
// of one component of several, which image/jpeg counts wrongly (it
// fails with "missing 0xff00 sequence" on such valid files), with the
// warning libjpeg-turbo would give of the file.
//
// misread holds only where libjpeg-turbo would read the file to its end
// marker, at most with a warning about the header (which it keeps the
// file after), so that a damaged or cut file is never called valid.
func jpegRestartMisread(data []byte) (warn string, misread bool) {
	w := scanWalker{data: data}
	warn = w.run()
	headerOnly := warn == "" || strings.HasPrefix(warn, "Warning: unknown JFIF") ||
		strings.HasPrefix(warn, "Unknown Adobe color transform") || warn == warnSOSParams
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
	// progressive: SOF2, whose scans are not read; the header still is.
	progressive bool
	// restartSingle: a scan of one component of several, sampled more
	// than once per MCU, with restarts.
	restartSingle bool
	sawEOI        bool // the walk read the whole file to its end marker
	// quietHeader: go on past the header's warnings (jpegRestartMisread).
	quietHeader bool
	jfif        bool // a JFIF APP0 segment
	adobe       bool // an Adobe APP14 segment, with its transform code
	xform       byte
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
			if !s.sawSOS {
				// jpeg_read_header ends here, guessing the colour space.
				s.sawSOS = true
				if w := s.colorWarning(); (w != "" && !s.quietHeader) || s.progressive {
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
	h, v   int
	bw, bh int // its blocks across and down, for a scan of it alone
	dc, ac *huffDecoder
}

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
	comps := make([]scanComp, 0, ns)
	blocks := 0
	for i := range ns {
		id, tabs := int(seg[1+2*i]), seg[2+2*i]
		var fc *frameComp
		for j := range s.comps {
			if s.comps[j].id == id {
				fc = &s.comps[j]
			}
		}
		td, ta := tabs>>4, tabs&15
		if fc == nil || td > 3 || ta > 3 || !s.dc[td].defined || !s.ac[ta].defined || s.dc[td].bad || s.ac[ta].bad {
			return -1, 0, ""
		}
		cw := (s.w*fc.h + s.hmax - 1) / s.hmax
		ch := (s.h*fc.v + s.vmax - 1) / s.vmax
		comps = append(comps, scanComp{h: fc.h, v: fc.v, bw: (cw + 7) / 8, bh: (ch + 7) / 8, dc: &s.dc[td], ac: &s.ac[ta]})
		blocks += fc.h * fc.v
	}
	// start_pass_huff_decoder: a sequential scan must cover the whole
	// block at full precision, but files with zeros there exist, so
	// libjpeg only warns.
	if p := seg[1+2*ns:]; p[0] != 0 || p[1] != 63 || p[2] != 0 {
		if !s.quietHeader {
			return -1, 0, warnSOSParams
		}
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
	r := bitReader{data: s.data, pos: pos}
	rst := 0
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
		}
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

// jpegRefusal returns, in its words, the error libjpeg-turbo stops with on
// a JPEG that image/jpeg decodes, or "": a quantization table not yet
// defined at a component's first scan; and in a sequential file, a
// Huffman table it refuses (overfull, or a DC size past 15) used by a
// scan, or a second scan after a first that held every component.
// image/jpeg checks none of these, so without this the pure-Go path
// would keep files the library skips. It reads every segment, skipping
// the coded data, whatever the warnings before (libjpeg stops at these
// even after one), and decodes nothing.
func jpegRefusal(data []byte) string {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return ""
	}
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
	pos := 2
	for {
		_, code, next, ok := nextMarker(data, pos)
		if !ok {
			return ""
		}
		pos = next
		if code == 0xD9 {
			return ""
		}
		seg, next, ok := segmentAt(data, code, pos)
		if !ok {
			return ""
		}
		pos = next
		switch code {
		case 0xC0, 0xC1, 0xC2:
			if !frame.frame(seg) {
				return ""
			}
			progressive, latched = code == 0xC2, [4]bool{}
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
				if pq > 1 || tq > 3 || len(seg) < size {
					return ""
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
				id, td, ta := int(seg[1+2*i]), seg[2+2*i]>>4, seg[2+2*i]&15
				for j, c := range frame.comps {
					// latch_quant_tables, at the component's first scan.
					if c.id == id && !latched[j] {
						if c.tq > 3 || !quant[c.tq] {
							return fmt.Sprintf("Quantization table 0x%02x was not defined", c.tq)
						}
						latched[j] = true
					}
				}
				if !progressive && td < 4 && ta < 4 && (huffSeen[0][td] && huffBad[0][td] || huffSeen[1][ta] && huffBad[1][ta]) {
					return "Bogus Huffman table definition"
				}
			}
			whole = whole || (!progressive && scans == 1 && ns == len(frame.comps))
			// Past the coded data to the next marker that is not a
			// restart marker.
			for {
				_, c, nx, ok := nextMarker(data, pos)
				if !ok {
					return ""
				}
				if c < 0xD0 || c > 0xD7 {
					pos = nx - 2 // its 0xFF, read again above
					break
				}
				pos = nx
			}
		}
	}
}
