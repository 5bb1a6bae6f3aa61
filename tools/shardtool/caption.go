package main

import (
	"image"
	"image/color"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/text/unicode/norm"
)

// captionHeight is the strip under each tile that holds its label.
const captionHeight = 14

// captionFace is Go Regular at 11 px: the X11 bitmap font grid used
// before holds ASCII alone, and drew class names from a user's own
// folders ("crème brûlée", "Ёж") with letters missing. Go's fonts
// cover Latin, Greek and Cyrillic (WGL4); the face is pure Go, like the
// rest of the build.
var captionFace = sync.OnceValues(func() (font.Face, error) {
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, err
	}
	return opentype.NewFace(f, &opentype.FaceOptions{Size: 11, DPI: 72, Hinting: font.HintingFull})
})

// fitCaption is text cut, at a rune, to what face draws in width pixels,
// ending in "…" where it was cut. Invalid UTF-8 (a class name from a
// foreign meta.json) is drawn as "?". Accents come composed (NFC): a
// folder named on macOS spells "è" as e and a combining grave, which the
// font has no glyph for, and a cut could part the two.
//
// One pass, as font.MeasureString sums (advances and kerning), that stops
// where the text passes the width: however long the name, the glyphs
// looked up are about those the tile shows. (Measuring each shorter prefix
// afresh was quadratic, and a fuzzed name stalled FuzzFitCaption's worker.)
func fitCaption(face font.Face, text string, width int) string {
	text = norm.NFC.String(strings.ToValidUTF8(text, "?"))
	limit := fixed.I(width)
	ellipsis, _ := face.GlyphAdvance('…')
	var w fixed.Int26_6 // the width of text[:i]
	prev, cut := rune(-1), -1
	for i, r := range text {
		// text[:i] and the ellipsis after it
		e := w + ellipsis
		if prev >= 0 {
			e += face.Kern(prev, '…')
			w += face.Kern(prev, r)
		}
		if e <= limit {
			cut = i
		}
		a, _ := face.GlyphAdvance(r)
		w += a
		prev = r
		if w > limit {
			if cut < 0 {
				return ""
			}
			return text[:cut] + "…"
		}
	}
	return text
}

// drawCaption writes text in white in the caption strip whose top-left
// corner is (x0, y0), for a tile width pixels wide.
func drawCaption(dst *image.RGBA, face font.Face, x0, y0, width int, text string) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(color.White), Face: face,
		Dot: fixed.P(x0+2, y0+captionHeight-3)}
	d.DrawString(fitCaption(face, text, width-4))
}
