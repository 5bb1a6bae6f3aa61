package main

import (
	"image"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/math/fixed"
	"golang.org/x/text/unicode/norm"
)

// Class names from a user's own folders are drawn letter for letter: the
// ASCII-only bitmap font this replaced drew "crème brûlée" as "crme brle".
func TestCaptionDrawsNonASCII(t *testing.T) {
	face, err := captionFace()
	if err != nil {
		t.Fatal(err)
	}
	// Each letter must have a glyph of its own: one the font lacks is
	// drawn as the .notdef box, and every lacking letter the same one.
	notdef := inkOf(t, face, "\U000E0000") // a tag character no text font draws
	for _, r := range "èûßçñøåæœЁжλΩ" {
		ink := inkOf(t, face, string(r))
		if ink == "" || ink == notdef {
			t.Errorf("%q draws no glyph of its own", r)
		}
	}
	// Accents are not dropped: é and e differ.
	if inkOf(t, face, "é") == inkOf(t, face, "e") {
		t.Error("é drawn as e")
	}
	// A name spelt decomposed (NFD, as macOS names folders) draws as the
	// composed one, not with a box for each combining accent.
	if inkOf(t, face, "cre\u0300me bru\u0302le\u0301e") != inkOf(t, face, "crème brûlée") {
		t.Error("the decomposed name is drawn otherwise than the composed one")
	}
}

// inkOf renders s alone and returns its pixels as a string to compare.
func inkOf(t *testing.T, face font.Face, s string) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 40, captionHeight))
	drawCaption(img, face, 0, 0, 40, s)
	var b strings.Builder
	inked := false
	for i := 0; i < len(img.Pix); i += 4 {
		if img.Pix[i] != 0 {
			inked = true
		}
		b.WriteByte(img.Pix[i])
	}
	if !inked {
		return ""
	}
	return b.String()
}

func TestFitCaption(t *testing.T) {
	face, err := captionFace()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text  string
		width int
		cut   bool
	}{
		{"3 tench", 124, false},
		{"417 balloon", 28, true},
		{"12 crème brûlée with a long tail of words", 60, true},
		{"5 Ёжик в тумане и другие", 50, true},
		{"7 bad \xff\xfe bytes", 124, false},
		{"", 124, false},
		{"999 x", 1, true},
	} {
		got := fitCaption(face, tc.text, tc.width)
		if !utf8.ValidString(got) {
			t.Errorf("%q at %d px: %q is not UTF-8", tc.text, tc.width, got)
		}
		if w := font.MeasureString(face, got); w > fixed.I(tc.width) {
			t.Errorf("%q at %d px: %q is %d px wide", tc.text, tc.width, got, w.Ceil())
		}
		if cut := got != strings.ToValidUTF8(tc.text, "?"); cut != tc.cut {
			t.Errorf("%q at %d px: %q, cut %v, want %v", tc.text, tc.width, got, cut, tc.cut)
		}
		if tc.cut && got != "" && !strings.HasSuffix(got, "…") {
			t.Errorf("%q at %d px: %q is cut without an ellipsis", tc.text, tc.width, got)
		}
		if tc.cut && got != "" && !strings.HasPrefix(strings.ToValidUTF8(tc.text, "?"), strings.TrimSuffix(got, "…")) {
			t.Errorf("%q at %d px: %q is not its start", tc.text, tc.width, got)
		}
	}
}

// Class names come from meta.json, outside bytes: whatever they hold, the
// caption is valid UTF-8, fits its width, and is the name's own start
// (composed, invalid bytes as "?") or an ellipsis after one.
func FuzzFitCaption(f *testing.F) {
	for _, s := range []string{"3 tench", "12 crème brûlée", "cre\u0300me", "\xff\xfe", "Ёжик в тумане", "", "…", "a\u0301\u0301\u0301"} {
		f.Add(s, 60)
	}
	face, err := captionFace()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string, width int) {
		width = 1 + (width&0x7fffffff)%300
		got := fitCaption(face, text, width)
		if !utf8.ValidString(got) {
			t.Fatalf("%q at %d px: %q is not UTF-8", text, width, got)
		}
		if w := font.MeasureString(face, got); w > fixed.I(width) {
			t.Fatalf("%q at %d px: %q is %d px wide", text, width, got, w.Ceil())
		}
		if !strings.HasPrefix(norm.NFC.String(strings.ToValidUTF8(text, "?")), strings.TrimSuffix(got, "…")) {
			t.Fatalf("%q at %d px: %q is not its start", text, width, got)
		}
	})
}

// countingFace counts the glyph lookups a caption costs.
type countingFace struct {
	font.Face
	n int
}

func (c *countingFace) GlyphAdvance(r rune) (fixed.Int26_6, bool) {
	c.n++
	return c.Face.GlyphAdvance(r)
}

// A long name costs what its visible part does: fitting one once measured
// every shorter prefix afresh, some 3 million glyph lookups for this one
// (quadratic: a fuzzed name of about 100,000 runes held it for minutes).
func TestFitCaptionLongName(t *testing.T) {
	face, err := captionFace()
	if err != nil {
		t.Fatal(err)
	}
	c := &countingFace{Face: face}
	long := strings.Repeat("crème brûlée ", 200) // 2,600 runes
	got := fitCaption(c, long, 124)
	if !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("got %q", got)
	}
	if c.n > 100 {
		t.Errorf("%d glyph lookups for a caption 124 px wide", c.n)
	}
}
