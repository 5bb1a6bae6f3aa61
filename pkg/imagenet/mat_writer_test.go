package imagenet

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math"
	"unicode/utf16"
)

// matWriter writes MAT v5 files for tests, independently of the reader:
// it follows the format description (128-byte header, 8-byte tags, small
// elements for up to 4 bytes, padding to 8, miCOMPRESSED around each
// variable), as MATLAB's save -v7 does.
type matWriter struct {
	order    byteOrder
	compress bool
}

type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// elem encodes one data element with its tag and padding.
func (w matWriter) elem(typ uint32, data []byte) []byte {
	var b []byte
	if n := len(data); n > 0 && n <= 4 && typ != miMATRIX {
		b = w.order.AppendUint32(b, uint32(n)<<16|typ)
		b = append(b, data...)
		return append(b, make([]byte, 4-n)...)
	}
	b = w.order.AppendUint32(b, typ)
	b = w.order.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	return append(b, make([]byte, (8-len(data)%8)%8)...)
}

// matrix encodes a miMATRIX element from its parts.
func (w matWriter) matrix(class uint8, dims []int, name string, body ...[]byte) []byte {
	flags := w.order.AppendUint32(nil, uint32(class))
	flags = w.order.AppendUint32(flags, 0)
	var d []byte
	for _, x := range dims {
		d = w.order.AppendUint32(d, uint32(int32(x)))
	}
	content := append(w.elem(miUINT32, flags), w.elem(miINT32, d)...)
	content = append(content, w.elem(miINT8, []byte(name))...)
	for _, b := range body {
		content = append(content, b...)
	}
	return w.elem(miMATRIX, content)
}

// empty is [] as MATLAB writes it inside structs: a miMATRIX with no bytes.
func (w matWriter) empty() []byte { return w.elem(miMATRIX, nil) }

// doubles writes a row vector of class double. Whole values in 0..255 are
// stored as miUINT8, as MATLAB does to save space.
func (w matWriter) doubles(vals ...float64) []byte {
	small := true
	for _, v := range vals {
		if v != math.Trunc(v) || v < 0 || v > 255 {
			small = false
		}
	}
	var data []byte
	typ := uint32(miDOUBLE)
	if small {
		typ = miUINT8
		for _, v := range vals {
			data = append(data, byte(v))
		}
	} else {
		for _, v := range vals {
			data = w.order.AppendUint64(data, math.Float64bits(v))
		}
	}
	return w.matrix(mxDOUBLE, []int{1, len(vals)}, "", w.elem(typ, data))
}

// chars writes a 1xN char array stored as UTF-16 (miUINT16), MATLAB's
// default, or as miUTF8 when utf8 is set.
func (w matWriter) chars(s string, utf8 bool) []byte {
	if utf8 {
		return w.matrix(mxCHAR, []int{1, len([]rune(s))}, "", w.elem(miUTF8, []byte(s)))
	}
	u := utf16.Encode([]rune(s))
	var data []byte
	for _, c := range u {
		data = w.order.AppendUint16(data, c)
	}
	return w.matrix(mxCHAR, []int{1, len(u)}, "", w.elem(miUINT16, data))
}

// structArray writes an Nx1 struct array; elems[i][f] is an encoded matrix.
func (w matWriter) structArray(name string, fields []string, elems [][][]byte) []byte {
	const width = 32
	var names []byte
	for _, f := range fields {
		slot := make([]byte, width)
		copy(slot, f)
		names = append(names, slot...)
	}
	body := [][]byte{
		w.elem(miINT32, w.order.AppendUint32(nil, width)),
		w.elem(miINT8, names),
	}
	for _, e := range elems {
		body = append(body, e...)
	}
	return w.matrix(mxSTRUCT, []int{len(elems), 1}, name, body...)
}

// file wraps variables in the 128-byte header, compressing each if asked.
func (w matWriter) file(vars ...[]byte) []byte {
	h := make([]byte, 128)
	copy(h, "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: test")
	for i := 56; i < 116; i++ {
		h[i] = ' '
	}
	w.order.PutUint16(h[124:], 0x0100)
	w.order.PutUint16(h[126:], 'M'<<8|'I')
	out := h
	for _, v := range vars {
		if !w.compress {
			out = append(out, v...)
			continue
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(v)
		zw.Close()
		out = w.order.AppendUint32(out, miCOMPRESSED)
		out = w.order.AppendUint32(out, uint32(z.Len()))
		out = append(out, z.Bytes()...) // compressed elements are not padded
	}
	return out
}

// testSynset is one synset for a test meta.mat.
type testSynset struct {
	id       int
	wnid     string
	words    string
	children []float64
}

// metaMat writes a devkit-style meta.mat: the synsets struct with all
// eight fields, in the given order.
func (w matWriter) metaMat(ss []testSynset) []byte {
	fields := []string{"ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"}
	var elems [][][]byte
	for i, s := range ss {
		children := w.empty()
		if len(s.children) > 0 {
			children = w.doubles(s.children...)
		}
		height := 0.0
		if len(s.children) > 0 {
			height = 1
		}
		elems = append(elems, [][]byte{
			w.doubles(float64(s.id)),
			w.chars(s.wnid, i%2 == 1),
			w.chars(s.words, false),
			w.chars("a gloss for "+s.wnid, true),
			w.doubles(float64(len(s.children))),
			children,
			w.doubles(height),
			w.doubles(1300.5), // stored as miDOUBLE, exercising that path
		})
	}
	return w.file(w.structArray("synsets", fields, elems))
}
