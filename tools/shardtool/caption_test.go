package main

import (
	"image"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/math/fixed"
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
