package imageio

import (
	"bytes"
	"errors"
	"image"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/testdata"
)

// entropyStart is where a JPEG's first scan's coded data begins.
func entropyStart(t testing.TB, data []byte) int {
	t.Helper()
	h, err := scanJPEGHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	return h.sosOffset + 2 + int(data[h.sosOffset+2])<<8 + int(data[h.sosOffset+3])
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// adobeXform returns data with its Adobe APP14 segment's transform code
// set to x.
func adobeXform(t testing.TB, data []byte, x byte) []byte {
	t.Helper()
	i := bytes.Index(data, []byte("\xFF\xEE"))
	if i < 0 || string(data[i+4:i+9]) != "Adobe" {
		t.Fatal("no Adobe APP14 segment")
	}
	b := bytes.Clone(data)
	b[i+4+11] = x
	return b
}

// sosField returns data with byte i (0: Ss, 1: Se, 2: Ah/Al) of its first
// scan header's spectral and approximation fields set to v.
func sosField(t testing.TB, data []byte, i int, v byte) []byte {
	t.Helper()
	end := entropyStart(t, data) // the fields are the header's last 3 bytes
	b := bytes.Clone(data)
	b[end-3+i] = v
	return b
}

// withByte returns a copy of data with the byte at i set to v.
func withByte(data []byte, i int, v byte) []byte {
	b := bytes.Clone(data)
	b[i] = v
	return b
}

// withScans returns a progressive file made n scans long by repeating
// its DC refinement scan before the end marker: valid coded data for
// image/jpeg, out of sequence for libjpeg, which warns.
func withScans(t testing.TB, data []byte, n int) []byte {
	t.Helper()
	begin, end := scans(data)
	for i := range begin {
		f := scanFields(t, data, i)
		if data[f] == 0 && data[f+2]>>4 != 0 && n >= len(begin) {
			extra := bytes.Repeat(data[begin[i]:end[i]], n-len(begin))
			return slices.Concat(data[:len(data)-2], extra, []byte{0xFF, 0xD9})
		}
	}
	t.Fatal("no DC refinement scan to repeat")
	return nil
}

// insertAt returns data with ins inserted before offset at.
func insertAt(data []byte, at int, ins ...byte) []byte {
	return slices.Concat(data[:at], ins, data[at:])
}

func TestJPEGScanWarning(t *testing.T) {
	color := encodeJPEG(t, gradient(64, 48), 90)
	gray := func() []byte {
		g := image.NewGray(image.Rect(0, 0, 40, 33))
		for i := range g.Pix {
			g.Pix[i] = uint8(i * 7)
		}
		return encodeJPEG(t, g, 75)
	}()
	restart := fixture(t, "restart_48x40.jpg")
	multiscan := fixture(t, "multiscan_48x40.jpg")
	eoi := func(data []byte) int { return len(data) - 2 }
	firstRST := bytes.Index(restart, []byte{0xFF, 0xD0})
	secondSOS := bytes.Index(multiscan[entropyStart(t, multiscan):], []byte{0xFF, 0xDA}) + entropyStart(t, multiscan)
	withRST := func(code byte) []byte {
		b := bytes.Clone(restart)
		b[firstRST+1] = code
		return b
	}
	prog := fixture(t, "progressive_48x40.jpg")
	progRestart := fixture(t, "progressive_restart_444_64x48.jpg")
	progScans, _ := scans(prog)
	half := func(data []byte) []byte {
		s := entropyStart(t, data)
		return slices.Concat(data[:s+(len(data)-s)/2], []byte{0xFF, 0xD9})
	}
	cases := []struct {
		name string
		data []byte
		want string // "" for none; otherwise the whole warning
	}{
		// Clean files of every shape the walk handles.
		{"4:2:0 colour", color, ""},
		{"grayscale", gray, ""},
		{"restart every MCU (cjpeg -restart 1B)", restart, ""},
		{"a scan per component (cjpeg -scans)", multiscan, ""},
		{"a scan per component, with restarts", fixture(t, "restart_multiscan_48x40.jpg"), ""},
		{"CMYK, 4 components", fixture(t, "cmyk_adobe_32x24.jpg"), ""},
		{"YCCK 4:2:0", fixture(t, "ycck_adobe_32x24.jpg"), ""},
		{"4:1:0 sampling", fixture(t, "sampling_4x2_32x24.jpg"), ""},
		{"arithmetic coding: not walked", fixture(t, "arithmetic_32x24.jpg"), ""},
		{"bytes after EOI are not the image's", append(bytes.Clone(color), 1, 2, 3), ""},
		{"fill 0xFFs before a marker are not junk", insertAt(color, eoi(color), 0xFF, 0xFF), ""},

		// Damage image/jpeg decodes past in silence. libjpeg's bit buffer
		// had fetched the first junk byte after this file's last code, so
		// it counts one fewer, and a single byte not at all.
		{"junk before EOI", insertAt(color, eoi(color), 1, 2, 3, 4, 5),
			"Corrupt JPEG data: 4 extraneous bytes before marker 0xd9"},
		{"one junk byte, fetched with the last codes", insertAt(color, eoi(color), 1), ""},
		{"a stuffed 0xFF in the junk counts two", insertAt(color, eoi(color), 1, 7, 0xFF, 0x00),
			"Corrupt JPEG data: 3 extraneous bytes before marker 0xd9"},
		{"junk between header segments", insertAt(color, 2, 0x12, 0x34, 0x56),
			"Corrupt JPEG data: 3 extraneous bytes before marker 0xdb"},
		{"junk before a restart marker", insertAt(restart, firstRST, 7, 7),
			"Corrupt JPEG data: 2 extraneous bytes before marker 0xd0"},
		{"a restart marker out of sequence", withRST(0xD3),
			"Corrupt JPEG data: found marker 0xd3 instead of RST0"},
		{"junk between scans", insertAt(multiscan, secondSOS, 9, 9, 9, 9),
			"Corrupt JPEG data: 4 extraneous bytes before marker 0xda"},
		{"coded data cut short", half(color), "Corrupt JPEG data: premature end of data segment"},
		{"sixteen one-bits are no code", insertAt(color, entropyStart(t, color), 0xFF, 0x00, 0xFF, 0x00),
			"Corrupt JPEG data: bad Huffman code"},

		// Progressive files (cjpeg -progressive: DC scans, AC bands, and
		// refinements of both), read by jdphuff.c's routines.
		{"progressive", prog, ""},
		{"progressive with restarts, 4:4:4", progRestart, ""},
		{"progressive, junk between header segments", insertAt(prog, 2, 1, 2),
			"Corrupt JPEG data: 2 extraneous bytes before marker 0xe0"},
		{"progressive, junk before EOI", insertAt(prog, eoi(prog), 1, 2, 3, 4, 5),
			"Corrupt JPEG data: 5 extraneous bytes before marker 0xd9"},
		{"progressive, junk between scans", insertAt(prog, progScans[3], 9, 9, 9),
			"Corrupt JPEG data: 3 extraneous bytes before marker 0xda"},
		{"progressive, junk before a restart marker", insertAt(progRestart, bytes.Index(progRestart, []byte{0xFF, 0xD0}), 7, 7),
			"Corrupt JPEG data: 2 extraneous bytes before marker 0xd0"},
		// The second scan (Y, coefficients 1–5, Al=2) made a refinement
		// (Ah=3, Al=2) of bits never sent.
		{"progressive, a refinement before the first pass", withByte(prog, scanFields(t, prog, 1)+2, 0x32),
			"Inconsistent progression sequence for component 0 coefficient 1"},
		// Kept at TurboJPEG's limit of 500 scans (the last ones a DC
		// refinement repeated, out of sequence); one more is refused
		// (TestJPEGRefusal).
		{"progressive, 500 scans", withScans(t, prog, 500),
			"Inconsistent progression sequence for component 0 coefficient 0"},

		// The header's warnings, which image/jpeg does not give either.
		{"JFIF 2.01", insertAt(color, 2, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 2, 1, 0, 0, 1, 0, 1, 0, 0),
			"Warning: unknown JFIF revision number 2.01"},
		{"JFIF 1.02 is known", insertAt(color, 2, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 2, 0, 0, 1, 0, 1, 0, 0), ""},
		{"an Adobe transform code past 2", adobeXform(t, fixture(t, "cmyk_adobe_32x24.jpg"), 5),
			"Unknown Adobe color transform code 5"},
		{"a sequential scan stopping at coefficient 0", sosField(t, color, 1, 0),
			"Invalid SOS parameters for sequential JPEG"},
	}
	tj := NewDecoder()
	defer tj.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := jpegScanWarning(c.data); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			// libjpeg-turbo itself, where it is installed and keeps the file.
			if _, err := tj.DecodeFull(c.data); tj.lib != nil && err == nil && tj.Warning() != c.want {
				t.Errorf("libjpeg-turbo says %q, the test wants %q", tj.Warning(), c.want)
			}
		})
	}
}

// Without libjpeg-turbo, a JPEG image/jpeg decodes past damage in is now
// reported: the stdlib path sets Warning() as the libjpeg path does, and
// the next decode clears it.
func TestStdlibReportsDamage(t *testing.T) {
	good := encodeJPEG(t, gradient(64, 48), 90)
	bad := insertAt(good, len(good)-2, slices.Repeat([]byte{0x42}, 40)...)
	for _, d := range backends(t) {
		img, err := d.DecodeFull(bad)
		if err != nil {
			t.Fatalf("%s: %v", backendName(d), err)
		}
		if !strings.Contains(d.Warning(), "extraneous bytes before marker 0xd9") {
			t.Errorf("%s: Warning() = %q, want the extraneous bytes named", backendName(d), d.Warning())
		}
		got := bytes.Clone(img.Pix)
		img, err = d.DecodeFull(good)
		if err != nil {
			t.Fatal(err)
		}
		if d.Warning() != "" {
			t.Errorf("%s: warning %q survived into the next decode", backendName(d), d.Warning())
		}
		if !bytes.Equal(got, img.Pix) {
			t.Errorf("%s: the junk changed the pixels", backendName(d))
		}
	}
}

// image/jpeg misreads valid files with restart markers in a scan of one
// component of several ("missing 0xff00 sequence"): they are skipped as
// unsupported, naming the library that reads them, not as corrupt; the
// same file damaged is still corrupt.
// Sequential (one scan per component) and progressive (whose AC scans
// hold one component each).
func TestRestartMisreadIsUnsupported(t *testing.T) {
	for _, name := range []string{"restart_multiscan_48x40.jpg", "progressive_restart_48x40.jpg"} {
		t.Run(name, func(t *testing.T) { testRestartMisread(t, fixture(t, name)) })
	}
	// Its scans out of sequence, which libjpeg warns of and decodes: a
	// scan header's warning, which leaves the file readable, as the
	// frame's do.
	noDC := withoutDCScans(t, fixture(t, "progressive_restart_48x40.jpg"))
	var ue *UnsupportedError
	if _, err := NewDecoderStdlib().DecodeFull(noDC); !errors.As(err, &ue) || !strings.Contains(err.Error(), "libjpeg also warns: Inconsistent progression sequence") {
		t.Errorf("a progressive file with restarts and no DC scans, on image/jpeg: %v, want unsupported naming the warning", err)
	}
	if tj := NewDecoder(); tj.lib != nil {
		defer tj.Close()
		if _, err := tj.DecodeFull(noDC); err != nil || !strings.HasPrefix(tj.Warning(), "Inconsistent progression sequence") {
			t.Errorf("libjpeg-turbo on the same file: %v, warning %q", err, tj.Warning())
		}
	}
}

func testRestartMisread(t *testing.T, good []byte) {
	if _, misread := jpegRestartMisread(good); !misread {
		t.Fatal("the fixture is not one image/jpeg misreads")
	}
	st := NewDecoderStdlib()
	_, err := st.DecodeFull(good)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "restart markers") || !strings.Contains(err.Error(), "libturbojpeg0") {
		t.Errorf("image/jpeg on a valid file with restarts in single-component scans: %v", err)
	}
	bad := insertAt(good, len(good)-2, slices.Repeat([]byte{0x11}, 20)...)
	var fe *FormatError
	if _, err := st.DecodeFull(bad); !errors.As(err, &fe) {
		t.Errorf("the same file with junk in it: %v, want a FormatError", err)
	}
	// Cut short, it is truncated, not unsupported.
	var ue2 *UnsupportedError
	if _, err := st.DecodeFull(good[:len(good)*2/3]); err == nil || errors.As(err, &ue2) {
		t.Errorf("the file cut short: %v, want truncated", err)
	}
	// A warning about its header alone (which libjpeg keeps the file
	// after) leaves it valid: unsupported, with the warning named.
	jfif2 := insertAt(good, 2, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 2, 1, 0, 0, 1, 0, 1, 0, 0)
	if _, err := st.DecodeFull(jfif2); !errors.As(err, &ue2) || !strings.Contains(err.Error(), "unknown JFIF revision number 2.01") {
		t.Errorf("with a JFIF 2.01 header: %v, want unsupported naming the warning", err)
	}
	if tj := NewDecoder(); tj.lib != nil {
		defer tj.Close()
		if _, err := tj.DecodeFull(good); err != nil || tj.Warning() != "" {
			t.Errorf("libjpeg-turbo: %v, warning %q; want a clean decode", err, tj.Warning())
		}
	}
}

// What libjpeg refuses and image/jpeg does not check is refused on the
// pure-Go path too, in libjpeg's words: both paths skip the same files.
func TestJPEGRefusal(t *testing.T) {
	color := encodeJPEG(t, gradient(64, 48), 90)
	multiscan := fixture(t, "multiscan_48x40.jpg")
	// The scan again, before the end marker.
	h, err := scanJPEGHeader(color)
	if err != nil {
		t.Fatal(err)
	}
	twice := slices.Concat(color[:len(color)-2], color[h.sosOffset:len(color)-2], []byte{0xFF, 0xD9})
	// The third component's quantization table made one never defined.
	undefinedQuant := bytes.Clone(multiscan)
	sof := bytes.Index(undefinedQuant, []byte{0xFF, 0xC0})
	undefinedQuant[sof+4+6+3*2+2] = 2
	// The same in a progressive file, where the rule holds too.
	progQuant := fixture(t, "progressive_48x40.jpg")
	psof := bytes.Index(progQuant, []byte{0xFF, 0xC2})
	progQuant = bytes.Clone(progQuant)
	progQuant[psof+4+6+3*2+2] = 2
	// A DC table's last value made 16, a size libjpeg refuses in a table.
	badDC := bytes.Clone(color)
	dht := bytes.Index(badDC, []byte{0xFF, 0xC4})
	n := 0
	for _, c := range badDC[dht+5 : dht+21] {
		n += int(c)
	}
	if badDC[dht+4]>>4 != 0 {
		t.Fatal("the first DHT table is not a DC table")
	}
	badDC[dht+21+n-1] = 16
	// The quantization segment's length made 3: its first table's
	// selector byte, then (as far as the length says) nothing.
	shortDQT := bytes.Clone(color)
	dqt := bytes.Index(shortDQT, []byte{0xFF, 0xDB})
	shortDQT[dqt+2], shortDQT[dqt+3] = 0, 3
	prog := fixture(t, "progressive_48x40.jpg")
	// The first table (DC, used by the first scan) made to hold a 16.
	progBadDC := bytes.Clone(prog)
	dht = bytes.Index(progBadDC, []byte{0xFF, 0xC4})
	n = 0
	for _, c := range progBadDC[dht+5 : dht+21] {
		n += int(c)
	}
	if progBadDC[dht+4]>>4 != 0 {
		t.Fatal("the progressive file's first DHT table is not a DC table")
	}
	progBadDC[dht+21+n-1] = 16
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"a scan after one that held every component", twice, "Didn't expect more than one scan"},
		{"a quantization segment that ends after a table's first byte", shortDQT, "Bogus marker length"},
		{"progressive, a successive approximation past 13", withByte(prog, scanFields(t, prog, 1)+2, 0x0E),
			"Invalid progressive parameters Ss=1 Se=5 Ah=0 Al=14"},
		{"progressive, a DC table with a size past 15", progBadDC, "Bogus Huffman table definition"},
		{"progressive, 501 scans", withScans(t, prog, 501), "Progressive JPEG image has more than 500 scans"},
		{"a quantization table never defined, met at a later scan", undefinedQuant, "Quantization table 0x02 was not defined"},
		{"a DC table with a size past 15", badDC, "Bogus Huffman table definition"},
		{"progressive, a quantization table never defined", progQuant, "Quantization table 0x02 was not defined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := jpegRefusal(c.data); got != c.want {
				t.Errorf("jpegRefusal = %q, want %q", got, c.want)
			}
			for _, d := range backends(t) {
				var fe *FormatError
				if _, err := d.DecodeFull(c.data); !errors.As(err, &fe) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.want)) {
					t.Errorf("%s: %v, want a FormatError saying %q", backendName(d), err, c.want)
				}
			}
		})
	}
	for _, data := range [][]byte{color, multiscan, fixture(t, "restart_48x40.jpg"), prog, withScans(t, prog, 500)} {
		if got := jpegRefusal(data); got != "" {
			t.Errorf("a valid file refused: %q", got)
		}
	}
}

// A marker libjpeg-turbo does not handle, met inside damaged coded data,
// is damage on both paths, not an unsupported feature.
func TestMarkerInCodedDataIsDamage(t *testing.T) {
	color := encodeJPEG(t, gradient(64, 48), 90)
	start := entropyStart(t, color)
	for _, code := range []byte{0xC5, 0xF0} {
		bad := insertAt(color, start+(len(color)-start)/2, 0xFF, code)
		for _, d := range backends(t) {
			var fe *FormatError
			if _, err := d.DecodeFull(bad); !errors.As(err, &fe) {
				t.Errorf("%s, 0xFF 0x%02X in the coded data: %v, want a FormatError", backendName(d), code, err)
			}
		}
	}
}

// No real photo is called damaged.
func TestJPEGScanCleanSample(t *testing.T) {
	files := testdata.ImageNetSample(t)
	walked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w := jpegScanWarning(data); w != "" {
			t.Errorf("%s: %s", filepath.Base(f), w)
		}
		if h, err := scanJPEGHeader(data); err == nil && !h.arithmetic {
			walked++
		}
	}
	t.Logf("%d files, %d of them Huffman-coded (walked)", len(files), walked)
}

// Against libjpeg-turbo itself, on the sample's photos and the restart
// fixture damaged at random: bits flipped in the coded data or the
// header, junk put before the end marker or into the coded data, bytes
// cut out of it.
// Wherever both decoders keep the file, the image/jpeg path's warning
// must be libjpeg-turbo's, word for word and count for count: the same
// files are called damaged, and --strict gives the same verdict, on a
// machine with the library and one without.
func TestJPEGScanMatchesLibjpeg(t *testing.T) {
	files := testdata.ImageNetSample(t)
	tj, st := NewDecoder(), NewDecoderStdlib()
	if tj.lib == nil {
		t.Skip("libjpeg-turbo is not installed: nothing to compare with")
	}
	defer tj.Close()
	restart := fixture(t, "restart_48x40.jpg")
	rng, trials := diffTrials(1)
	kinds := []string{"flip", "junk before EOI", "junk in the data", "cut", "header"}
	flagged, clean, refused := map[string]int{}, map[string]int{}, map[string]int{}
	for trial := range trials {
		var data []byte
		if trial%8 == 7 {
			data = bytes.Clone(restart)
		} else {
			var err error
			if data, err = os.ReadFile(files[rng.Intn(len(files))]); err != nil {
				t.Fatal(err)
			}
		}
		if h, err := scanJPEGHeader(data); err != nil || h.progressive {
			continue
		}
		kind := kinds[rng.Intn(len(kinds))]
		data = damageJPEG(t, rng, data, kind)
		switch lw, sw, by := bothWarnings(tj, st, data); {
		case by != "":
			refused[by]++ // not this test's concern (TestJPEGRefusal's, where only libjpeg refuses)
		case lw != sw:
			t.Errorf("%s (trial %d): libjpeg-turbo says %q, the image/jpeg path %q", kind, trial, lw, sw)
		case sw != "":
			flagged[kind]++
		default:
			clean[kind]++
		}
	}
	t.Logf("kept by both and called damaged by both: %v; by neither: %v; refused by %v", flagged, clean, refused)
	for _, k := range kinds {
		if flagged[k] == 0 {
			t.Errorf("no %q trial was kept and flagged by both: the test exercised nothing there", k)
		}
	}
}

// diffTrials is the random source and the number of trials of a
// differential test against libjpeg-turbo: 1,000 from the given seed, or
// what $JPEGSCAN_TRIALS and $JPEGSCAN_SEED say, to run it longer.
func diffTrials(seed int64) (*rand.Rand, int) {
	trials := 1000
	if v, err := strconv.ParseInt(os.Getenv("JPEGSCAN_SEED"), 10, 64); err == nil {
		seed = v
	}
	if v, err := strconv.Atoi(os.Getenv("JPEGSCAN_TRIALS")); err == nil {
		trials = v
	}
	return rand.New(rand.NewSource(seed)), trials
}

// damageJPEG damages data (a clone, or data itself) at random in one of
// these ways: "flip", bits flipped in the coded data (from the first
// scan's on: a progressive file's later headers too); "junk before EOI";
// "junk in the data"; "cut", bytes cut out of it; "header", a bit
// flipped between SOI and the first scan's data.
func damageJPEG(t testing.TB, rng *rand.Rand, data []byte, kind string) []byte {
	t.Helper()
	start, end := entropyStart(t, data), len(data)-2
	switch kind {
	case "flip":
		for range 1 + rng.Intn(3) {
			data[start+rng.Intn(end-start)] ^= 1 << rng.Intn(8)
		}
	case "junk before EOI":
		data = insertAt(data, end, randomJunk(rng, 1+rng.Intn(12))...)
	case "junk in the data":
		data = insertAt(data, start+rng.Intn(end-start), randomJunk(rng, 1+rng.Intn(6))...)
	case "cut":
		at := start + rng.Intn(end-start-4)
		data = slices.Delete(data, at, at+1+rng.Intn(4))
	case "header":
		data[2+rng.Intn(start-2)] ^= 1 << rng.Intn(8)
	default:
		t.Fatalf("no damage called %q", kind)
	}
	return data
}

// bothWarnings decodes data with libjpeg-turbo and with image/jpeg:
// their warnings, where both keep it, and which of them refused it.
func bothWarnings(tj, st *Decoder, data []byte) (turbo, stdlib string, refused string) {
	_, terr := tj.DecodeFull(data)
	_, serr := st.DecodeFull(data)
	switch {
	case terr != nil && serr != nil:
		return "", "", "both"
	case terr != nil:
		return "", "", "libjpeg-turbo"
	case serr != nil:
		return "", "", "image/jpeg"
	}
	return tj.Warning(), st.Warning(), ""
}

// randomJunk is n bytes that are neither 0xFF nor part of a marker.
func randomJunk(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Intn(255))
	}
	return b
}

// FuzzJPEGScanWarning: the walk reads outside bytes; it must not panic
// or hang, and what it says is one of libjpeg's warnings.
func FuzzJPEGScanWarning(f *testing.F) {
	for _, name := range []string{"restart_48x40.jpg", "multiscan_48x40.jpg", "cmyk_adobe_32x24.jpg", "sampling_4x2_32x24.jpg",
		"progressive_48x40.jpg", "progressive_restart_48x40.jpg", "progressive_restart_444_64x48.jpg"} {
		f.Add(fixture(f, name))
	}
	good := encodeJPEG(f, gradient(24, 17), 80)
	f.Add(good)
	f.Add(insertAt(good, len(good)-2, 1, 2, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		jpegRefusal(data) // must not panic or hang either
		jpegRestartMisread(data)
		w := jpegScanWarning(data)
		if w == "" {
			return
		}
		// One libjpeg gives as a warning, which the libjpeg-turbo path
		// also takes for one (turboWarning).
		for _, p := range libjpegWarnings {
			if strings.HasPrefix(w, p) {
				return
			}
		}
		t.Fatalf("warning %q is none of libjpeg's", w)
	})
}

// The walk's cost on the image/jpeg path, per sample photo.
func BenchmarkJPEGScanWarning(b *testing.B) {
	all, total := sampleFiles(b, func(data []byte) []byte { return data })
	b.SetBytes(int64(total / len(all)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		jpegScanWarning(all[i%len(all)])
	}
}

// sampleFiles reads the ImageNet sample's photos, each through conv (nil
// from it leaves the photo out), and their total size.
func sampleFiles(b *testing.B, conv func([]byte) []byte) (all [][]byte, total int) {
	for _, f := range testdata.ImageNetSample(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if data = conv(data); data != nil {
			all = append(all, data)
			total += len(data)
		}
	}
	return all, total
}
