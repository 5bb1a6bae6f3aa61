package main

import (
	"image"
	"image/color"
	"strings"
	"sync"
	"unicode/utf8"

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
func fitCaption(face font.Face, text string, width int) string {
	text = norm.NFC.String(strings.ToValidUTF8(text, "?"))
	limit := fixed.I(width)
	if font.MeasureString(face, text) <= limit {
		return text
	}
	for text != "" {
		_, size := utf8.DecodeLastRuneInString(text)
		text = text[:len(text)-size]
		if font.MeasureString(face, text+"…") <= limit {
			return text + "…"
		}
	}
	return ""
}

// drawCaption writes text in white in the caption strip whose top-left
// corner is (x0, y0), for a tile width pixels wide.
func drawCaption(dst *image.RGBA, face font.Face, x0, y0, width int, text string) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(color.White), Face: face,
		Dot: fixed.P(x0+2, y0+captionHeight-3)}
	d.DrawString(fitCaption(face, text, width-4))
}
