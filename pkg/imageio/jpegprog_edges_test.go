package imageio

import (
	"bytes"
	"errors"
	"testing"
)

// progFile is a hand-made progressive gray JPEG, w×h, with all-ones
// quantization, DC table 0 (one code, "0", for dcSym), AC table 0 with
// the given symbols (codes of length 2, in order: 00, 01, 10), a
// restart interval ri (0: none) and the given scans (SOS parameters Ss,
// Se, AhAl, then the coded data).
func progFile(w, h int, dcSym byte, acSyms []byte, ri int, scans ...[]byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0})
	b.Write(bytes.Repeat([]byte{1}, 64))
	b.Write([]byte{0xFF, 0xC2, 0, 11, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0})
	b.Write([]byte{0xFF, 0xC4, 0, 20, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, dcSym})
	b.Write([]byte{0xFF, 0xC4, 0, byte(19 + len(acSyms)), 0x10, 0, byte(len(acSyms)), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	b.Write(acSyms)
	if ri > 0 {
		b.Write([]byte{0xFF, 0xDD, 0, 4, byte(ri >> 8), byte(ri)})
	}
	for _, s := range scans {
		b.Write([]byte{0xFF, 0xDA, 0, 8, 1, 1, 0x00})
		b.Write(s)
	}
	b.Write([]byte{0xFF, 0xD9})
	return b.Bytes()
}

// withoutDCScans is a progressive file with its DC scans cut out: its
// AC scans then come before any DC scan, which libjpeg warns of and
// decodes.
func withoutDCScans(t testing.TB, prog []byte) []byte {
	t.Helper()
	begin, end := scans(prog)
	var out []byte
	last := 0
	for i := range begin {
		if prog[scanFields(t, prog, i)] == 0 {
			out = append(out, prog[last:begin[i]]...)
			last = end[i]
		}
	}
	return append(out, prog[last:]...)
}

// Cases the random differential rarely or never draws, each made so that
// the walk gets it right only by following one line of jdphuff.c; both
// decoders keep every one, so the image/jpeg path must say what
// libjpeg-turbo says.
func TestJPEGScanProgressiveEdges(t *testing.T) {
	noDC := withoutDCScans(t, fixture(t, "progressive_48x40.jpg"))
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		// (JCOEF)LEFT_SHIFT(16, 12) is 0: the refinement reads no
		// correction bit for it, and the bit sent ("1") starts the next
		// block's code ("10", a size of 5: bad in a refinement).
		{"AC first's 16-bit truncation", progFile(16, 8, 0, []byte{0x00, 0x01, 0x05}, 0,
			[]byte{0, 0, 0x00, 0x3F},       // DC: "0" "0"
			[]byte{1, 1, 0x0C, 0xA0, 0x7F}, // AC 1..1, Al 12: "10" "10000", "00"
			[]byte{1, 1, 0xCB, 0x27}),      // refinement: "00" "1" "00"
			"Corrupt JPEG data: bad Huffman code"},
		// A run of 2 ends at the restart marker; the block after it has
		// a code of its own, read whole: no bytes left over.
		{"an end-of-band run cut by a restart", progFile(16, 8, 0, []byte{0x00, 0x10}, 1,
			[]byte{0, 0, 0x00, 0x7F, 0xFF, 0xD0, 0x7F},
			[]byte{1, 63, 0x00, 0x5F, 0xFF, 0xD0, 0x3F}), // "01" "0", RST0, "00"
			""},
		// An AC scan before its component's DC scan: warned of as
		// coefficient 0 (no later DC refinement says it again).
		{"AC scans with no DC scan", noDC, "Inconsistent progression sequence for component 0 coefficient 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := jpegScanWarning(c.data); got != c.want {
				t.Errorf("walk: %q, want %q", got, c.want)
			}
			for _, d := range backends(t) {
				if _, err := d.DecodeFull(c.data); err != nil || d.Warning() != c.want {
					t.Errorf("%s: %v, warning %q, want %q", backendName(d), err, d.Warning(), c.want)
				}
			}
		})
	}
}

// A DC first scan whose differences (each +32767) carry the prediction
// past INT_MAX: decode_mcu_DC_first stops (JERR_BAD_DCT_COEF), where
// image/jpeg wraps in silence; the pure-Go path must refuse it too.
func TestJPEGDCPredictionOverflow(t *testing.T) {
	w, h := 2056, 2048 // 65,792 blocks: past 65,538 × 32,767
	data := progFile(w, h, 15, []byte{0x00}, 0,
		append([]byte{0, 0, 0x00}, bytes.Repeat([]byte{0x7F, 0xFF, 0x00}, (w/8)*(h/8))...)) // "0" and 15 ones a block
	for _, d := range backends(t) {
		var fe *FormatError
		if _, err := d.DecodeFull(data); !errors.As(err, &fe) || !bytes.Contains([]byte(err.Error()), []byte("DCT coefficient out of range")) {
			t.Errorf("%s: %v, want a FormatError naming libjpeg's DCT coefficient out of range", backendName(d), err)
		}
	}
}
