package imagenet

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf16"
)

// This file is a minimal reader for MATLAB level-5 MAT files, enough to read
// the devkit's meta.mat. It is written from the published file-format
// description; only the data types and array classes the devkit uses are
// decoded, the rest are parsed past or reported as unsupported.

// MAT v5 data element types.
const (
	miINT8       = 1
	miUINT8      = 2
	miINT16      = 3
	miUINT16     = 4
	miINT32      = 5
	miUINT32     = 6
	miSINGLE     = 7
	miDOUBLE     = 9
	miINT64      = 12
	miUINT64     = 13
	miMATRIX     = 14
	miCOMPRESSED = 15
	miUTF8       = 16
	miUTF16      = 17
	miUTF32      = 18
)

// MAT v5 array classes (the low byte of the array flags).
const (
	mxCELL   = 1
	mxSTRUCT = 2
	mxOBJECT = 3
	mxCHAR   = 4
	mxSPARSE = 5
	mxDOUBLE = 6
	mxUINT64 = 15
)

const (
	matHeaderLen = 128
	// A crafted nesting of cells could otherwise recurse as deep as the
	// input allows; meta.mat nests two levels.
	matMaxDepth = 32
	// meta.mat decompresses to about 2 MB; the cap stops zlib bombs.
	matMaxInflated = 256 << 20
	// The largest number of elements an array may claim. meta.mat's biggest
	// is 1860; the cap keeps products of crafted dimensions from overflowing.
	matMaxElems = 1 << 31
)

// errMAT marks input that is not a well-formed MAT v5 file.
var errMAT = errors.New("malformed MAT file")

// matArray is one decoded MATLAB array. Only the part matching its class is
// set: num for numeric classes, str for char, fields/elems for struct, cells
// for cell arrays. An empty matrix (a miMATRIX element with no bytes) has
// class 0.
type matArray struct {
	class  uint8
	dims   []int
	name   string
	num    []float64
	str    string
	fields []string
	elems  [][]*matArray // struct elements in column-major order, one value per field
	cells  []*matArray
}

// field returns the value of field name in struct element i, or nil.
func (a *matArray) field(i int, name string) *matArray {
	if i < 0 || i >= len(a.elems) {
		return nil
	}
	for f, fn := range a.fields {
		if fn == name && f < len(a.elems[i]) {
			return a.elems[i][f]
		}
	}
	return nil
}

type matParser struct {
	order binary.ByteOrder
}

// parseMAT decodes the top-level variables of a MAT v5 file.
func parseMAT(b []byte) ([]*matArray, error) {
	if len(b) < matHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the 128-byte header", errMAT, len(b))
	}
	var p matParser
	switch string(b[126:128]) {
	case "IM":
		p.order = binary.LittleEndian
	case "MI":
		p.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: no endian indicator (not a MAT v5 file)", errMAT)
	}
	if v := p.order.Uint16(b[124:126]); v != 0x0100 {
		if bytes.HasPrefix(b, []byte("MATLAB 7.3")) {
			return nil, fmt.Errorf("%w: MAT v7.3 (HDF5) files are not supported", errMAT)
		}
		return nil, fmt.Errorf("%w: version %#04x, want 0x0100", errMAT, v)
	}
	return p.topLevel(b[matHeaderLen:], 0)
}

// topLevel decodes a sequence of top-level data elements. Compressed
// elements hold further elements, hence the depth.
func (p *matParser) topLevel(b []byte, depth int) ([]*matArray, error) {
	var out []*matArray
	for len(b) > 0 {
		typ, data, rest, err := p.tag(b)
		if err != nil {
			return out, err
		}
		b = rest
		switch typ {
		case miCOMPRESSED:
			if depth > 0 {
				return out, fmt.Errorf("%w: nested compressed element", errMAT)
			}
			zr, err := zlib.NewReader(bytes.NewReader(data))
			if err != nil {
				return out, fmt.Errorf("%w: compressed element: %v", errMAT, err)
			}
			inner, err := io.ReadAll(io.LimitReader(zr, matMaxInflated+1))
			if err != nil {
				return out, fmt.Errorf("%w: compressed element: %v", errMAT, err)
			}
			if len(inner) > matMaxInflated {
				return out, fmt.Errorf("%w: compressed element inflates past %d bytes", errMAT, matMaxInflated)
			}
			vs, err := p.topLevel(inner, depth+1)
			out = append(out, vs...)
			if err != nil {
				return out, err
			}
		case miMATRIX:
			a, err := p.matrix(data, 0)
			if err != nil {
				return out, err
			}
			out = append(out, a)
		default:
			// Other top-level types hold no variables; skip them.
		}
	}
	return out, nil
}

// tag splits one data element off b: its type, its data, and what follows.
// Elements are padded to 8 bytes, except compressed ones, whose byte count
// is exact.
func (p *matParser) tag(b []byte) (typ uint32, data, rest []byte, err error) {
	if len(b) < 8 {
		return 0, nil, nil, fmt.Errorf("%w: truncated data element tag (%d bytes)", errMAT, len(b))
	}
	w := p.order.Uint32(b[0:4])
	if n := w >> 16; n != 0 {
		// Small data element: the byte count sits in the tag's upper half and
		// up to 4 bytes of data in the tag's second word.
		if n > 4 {
			return 0, nil, nil, fmt.Errorf("%w: small data element claims %d bytes", errMAT, n)
		}
		return w & 0xffff, b[4 : 4+n], b[8:], nil
	}
	n := uint64(p.order.Uint32(b[4:8]))
	if n > uint64(len(b)-8) {
		return 0, nil, nil, fmt.Errorf("%w: data element of type %d claims %d bytes, %d left", errMAT, w, n, len(b)-8)
	}
	end := 8 + int(n)
	data = b[8:end]
	if w != miCOMPRESSED {
		end = min(8+int((n+7)&^7), len(b))
	}
	return w, data, b[end:], nil
}

// matrix decodes the contents of one miMATRIX element.
func (p *matParser) matrix(b []byte, depth int) (*matArray, error) {
	if len(b) == 0 {
		return &matArray{}, nil // MATLAB writes [] as an empty miMATRIX
	}
	if depth > matMaxDepth {
		return nil, fmt.Errorf("%w: arrays nested deeper than %d", errMAT, matMaxDepth)
	}
	typ, flags, b, err := p.tag(b)
	if err != nil {
		return nil, err
	}
	if typ != miUINT32 || len(flags) != 8 {
		return nil, fmt.Errorf("%w: array flags: type %d, %d bytes", errMAT, typ, len(flags))
	}
	a := &matArray{class: uint8(p.order.Uint32(flags[0:4]))}

	typ, dims, b, err := p.tag(b)
	if err != nil {
		return nil, err
	}
	if typ != miINT32 || len(dims)%4 != 0 || len(dims) < 8 {
		return nil, fmt.Errorf("%w: array dimensions: type %d, %d bytes", errMAT, typ, len(dims))
	}
	total := 1
	for i := 0; i < len(dims); i += 4 {
		d := int32(p.order.Uint32(dims[i:]))
		if d < 0 {
			return nil, fmt.Errorf("%w: negative dimension %d", errMAT, d)
		}
		a.dims = append(a.dims, int(d))
		if d > 0 && total > matMaxElems/int(d) {
			return nil, fmt.Errorf("%w: dimensions %v describe more than %d elements", errMAT, a.dims, matMaxElems)
		}
		total *= int(d)
	}

	typ, name, b, err := p.tag(b)
	if err != nil {
		return nil, err
	}
	if typ != miINT8 && typ != miUINT8 && typ != miUTF8 {
		return nil, fmt.Errorf("%w: array name of type %d", errMAT, typ)
	}
	a.name = string(name)

	switch a.class {
	case mxCELL:
		for i := 0; i < total; i++ {
			c, rest, err := p.subMatrix(b, depth)
			if err != nil {
				return nil, fmt.Errorf("cell %s{%d}: %w", a.name, i+1, err)
			}
			b = rest
			a.cells = append(a.cells, c)
		}
	case mxSTRUCT:
		if err := p.structFields(a, b, total, depth); err != nil {
			return nil, err
		}
	case mxCHAR:
		typ, data, _, err := p.tag(b)
		if err != nil {
			return nil, fmt.Errorf("char array %s: %w", a.name, err)
		}
		chars, err := p.chars(typ, data)
		if err != nil {
			return nil, fmt.Errorf("char array %s: %w", a.name, err)
		}
		a.str = charMatrix(chars, a.dims)
	default:
		if a.class >= mxDOUBLE && a.class <= mxUINT64 {
			typ, data, _, err := p.tag(b)
			if err != nil {
				return nil, fmt.Errorf("numeric array %s: %w", a.name, err)
			}
			// MATLAB stores a double array in the smallest integer type that
			// holds its values, so the storage type need not match the class.
			if a.num, err = p.numbers(typ, data); err != nil {
				return nil, fmt.Errorf("numeric array %s: %w", a.name, err)
			}
		}
		// Objects, sparse arrays and the rest are not needed: keep only the
		// header.
	}
	return a, nil
}

// subMatrix decodes one miMATRIX element nested in a struct or cell.
func (p *matParser) subMatrix(b []byte, depth int) (*matArray, []byte, error) {
	typ, data, rest, err := p.tag(b)
	if err != nil {
		return nil, nil, err
	}
	if typ != miMATRIX {
		return nil, nil, fmt.Errorf("%w: element of type %d where an array belongs", errMAT, typ)
	}
	a, err := p.matrix(data, depth+1)
	return a, rest, err
}

// structFields decodes a struct's field names and then, element by element,
// one nested array per field.
func (p *matParser) structFields(a *matArray, b []byte, total, depth int) error {
	typ, l, b, err := p.tag(b)
	if err != nil {
		return fmt.Errorf("struct %s: %w", a.name, err)
	}
	if typ != miINT32 || len(l) != 4 {
		return fmt.Errorf("%w: struct %s: field name length of type %d, %d bytes", errMAT, a.name, typ, len(l))
	}
	width := int(int32(p.order.Uint32(l)))
	typ, names, b, err := p.tag(b)
	if err != nil {
		return fmt.Errorf("struct %s: %w", a.name, err)
	}
	if typ != miINT8 && typ != miUINT8 {
		return fmt.Errorf("%w: struct %s: field names of type %d", errMAT, a.name, typ)
	}
	if len(names) > 0 && (width <= 0 || len(names)%width != 0) {
		return fmt.Errorf("%w: struct %s: %d bytes of field names in %d-byte slots", errMAT, a.name, len(names), width)
	}
	for i := 0; i < len(names); i += width {
		slot := names[i : i+width]
		if z := bytes.IndexByte(slot, 0); z >= 0 {
			slot = slot[:z]
		}
		a.fields = append(a.fields, string(slot))
	}
	if len(a.fields) == 0 {
		return nil // nothing stored per element, however many elements
	}
	for i := 0; i < total; i++ {
		vals := make([]*matArray, len(a.fields))
		for f := range vals {
			v, rest, err := p.subMatrix(b, depth)
			if err != nil {
				return fmt.Errorf("struct %s(%d).%s: %w", a.name, i+1, a.fields[f], err)
			}
			b = rest
			vals[f] = v
		}
		a.elems = append(a.elems, vals)
	}
	return nil
}

// chars decodes the character data of a char array.
func (p *matParser) chars(typ uint32, data []byte) ([]rune, error) {
	var out []rune
	switch typ {
	case miUTF8:
		return []rune(string(data)), nil
	case miUINT8, miINT8:
		for _, c := range data {
			out = append(out, rune(c))
		}
	case miUINT16, miUTF16, miINT16:
		if len(data)%2 != 0 {
			return nil, fmt.Errorf("%w: %d bytes of 16-bit characters", errMAT, len(data))
		}
		u := make([]uint16, len(data)/2)
		for i := range u {
			u[i] = p.order.Uint16(data[2*i:])
		}
		out = utf16.Decode(u)
	case miUTF32, miUINT32, miINT32:
		if len(data)%4 != 0 {
			return nil, fmt.Errorf("%w: %d bytes of 32-bit characters", errMAT, len(data))
		}
		for i := 0; i < len(data); i += 4 {
			out = append(out, rune(p.order.Uint32(data[i:])))
		}
	default:
		return nil, fmt.Errorf("%w: characters stored as type %d", errMAT, typ)
	}
	return out, nil
}

// charMatrix turns column-major characters into text, one line per row.
// Rows of a char matrix are padded with spaces, which are trimmed.
func charMatrix(chars []rune, dims []int) string {
	rows := 1
	if len(dims) > 0 {
		rows = dims[0]
	}
	if rows <= 1 || len(chars) < rows || len(chars)%rows != 0 {
		return string(chars)
	}
	cols := len(chars) / rows
	lines := make([]byte, 0, len(chars)+rows)
	for r := 0; r < rows; r++ {
		line := make([]rune, cols)
		for c := 0; c < cols; c++ {
			line[c] = chars[c*rows+r]
		}
		if r > 0 {
			lines = append(lines, '\n')
		}
		lines = append(lines, bytes.TrimRight([]byte(string(line)), " ")...)
	}
	return string(lines)
}

// numbers decodes numeric data of any storage type as float64.
func (p *matParser) numbers(typ uint32, data []byte) ([]float64, error) {
	var size int
	switch typ {
	case miINT8, miUINT8:
		size = 1
	case miINT16, miUINT16:
		size = 2
	case miINT32, miUINT32, miSINGLE:
		size = 4
	case miDOUBLE, miINT64, miUINT64:
		size = 8
	default:
		return nil, fmt.Errorf("%w: numbers stored as type %d", errMAT, typ)
	}
	if len(data)%size != 0 {
		return nil, fmt.Errorf("%w: %d bytes of %d-byte numbers", errMAT, len(data), size)
	}
	out := make([]float64, len(data)/size)
	for i := range out {
		d := data[i*size:]
		var v float64
		switch typ {
		case miINT8:
			v = float64(int8(d[0]))
		case miUINT8:
			v = float64(d[0])
		case miINT16:
			v = float64(int16(p.order.Uint16(d)))
		case miUINT16:
			v = float64(p.order.Uint16(d))
		case miINT32:
			v = float64(int32(p.order.Uint32(d)))
		case miUINT32:
			v = float64(p.order.Uint32(d))
		case miSINGLE:
			v = float64(math.Float32frombits(p.order.Uint32(d)))
		case miDOUBLE:
			v = math.Float64frombits(p.order.Uint64(d))
		case miINT64:
			v = float64(int64(p.order.Uint64(d)))
		case miUINT64:
			v = float64(p.order.Uint64(d))
		}
		out[i] = v
	}
	return out, nil
}

// synset is one entry of the devkit's meta.mat.
type synset struct {
	id          int    // ILSVRC2012_ID: 1..1000 for the classes, higher for inner nodes
	wnid        string // WordNet ID, e.g. n01440764
	words       string // e.g. "tench, Tinca tinca"
	numChildren int    // -1 when the field is absent
}

// metaSynsets extracts the synsets struct array from a devkit meta.mat.
func metaSynsets(b []byte) ([]synset, error) {
	vars, err := parseMAT(b)
	if err != nil {
		return nil, err
	}
	var s *matArray
	for _, v := range vars {
		if v.class == mxSTRUCT && hasField(v, "ILSVRC2012_ID") && hasField(v, "WNID") {
			s = v
			if v.name == "synsets" {
				break
			}
		}
	}
	if s == nil {
		return nil, fmt.Errorf("%w: no struct array with fields ILSVRC2012_ID and WNID (want the devkit's synsets)", errMAT)
	}
	out := make([]synset, 0, len(s.elems))
	seen := make(map[int]bool, len(s.elems))
	for i := range s.elems {
		id, ok := scalar(s.field(i, "ILSVRC2012_ID"))
		if !ok || id < 1 || id != math.Trunc(id) || id > 1e9 {
			return nil, fmt.Errorf("%w: synsets(%d).ILSVRC2012_ID is not a positive integer", errMAT, i+1)
		}
		sy := synset{id: int(id), numChildren: -1}
		if seen[sy.id] {
			return nil, fmt.Errorf("%w: synsets(%d): ILSVRC2012_ID %d appears twice", errMAT, i+1, sy.id)
		}
		seen[sy.id] = true
		if w := s.field(i, "WNID"); w != nil && w.class == mxCHAR {
			sy.wnid = w.str
		}
		if !validWNID(sy.wnid) {
			return nil, fmt.Errorf("%w: synsets(%d).WNID %q is not a WordNet ID", errMAT, i+1, sy.wnid)
		}
		if w := s.field(i, "words"); w != nil && w.class == mxCHAR {
			sy.words = w.str
		}
		if n, ok := scalar(s.field(i, "num_children")); ok {
			sy.numChildren = int(n)
		}
		out = append(out, sy)
	}
	return out, nil
}

func hasField(a *matArray, name string) bool {
	for _, f := range a.fields {
		if f == name {
			return true
		}
	}
	return false
}

// scalar reads a 1x1 numeric array.
func scalar(a *matArray) (float64, bool) {
	if a == nil || len(a.num) != 1 {
		return 0, false
	}
	return a.num[0], true
}
