package imageio

import (
	"errors"
	"fmt"
)

// ErrTruncated is wrapped by the *FormatError returned for input that ends
// before the image does, so callers can count truncated files separately:
// errors.Is(err, ErrTruncated).
var ErrTruncated = errors.New("truncated")

// ErrEmpty is wrapped by the *FormatError returned for a zero-length input.
var ErrEmpty = errors.New("empty file")

// FormatError reports input that is not a valid image: empty, truncated,
// corrupt, or not an image format at all. Ingest skips such files and records
// Error() as the reason, so the message names the format and the defect.
type FormatError struct {
	Format string // "jpeg", "png", ... or "" when the content was not recognised
	Reason string // what is wrong, e.g. "truncated JPEG (Premature end of JPEG file)"
	Err    error  // ErrTruncated, ErrEmpty, or the underlying decoder's error; may be nil
}

func (e *FormatError) Error() string {
	if e.Format == "" {
		return e.Reason
	}
	return e.Format + ": " + e.Reason
}

func (e *FormatError) Unwrap() error { return e.Err }

// UnsupportedError reports a valid image this package will not decode: a
// feature the decoders lack (12-bit or lossless JPEG, a 4-component JPEG
// without Adobe metadata on the stdlib path) or dimensions beyond MaxSide or
// MaxPixels, which are refused before any pixel memory is allocated.
type UnsupportedError struct {
	Format string
	Reason string
	Err    error // the underlying decoder's error, if any
}

func (e *UnsupportedError) Error() string {
	if e.Format == "" {
		return "unsupported: " + e.Reason
	}
	return e.Format + ": unsupported: " + e.Reason
}

func (e *UnsupportedError) Unwrap() error { return e.Err }

// Limits on decoded dimensions. A hostile or broken header can claim
// 65535x65535 pixels (12 GB as RGB); MaxPixels refuses that from the
// header, and no ImageNet image comes near it. A side may be as long as
// JPEG allows, so panoramas (a 20,000×600 strip is 12 megapixels) decode:
// the resize computes only the crop window, whatever the width.
const (
	MaxSide   = 65535       // pixels per side: JPEG's own limit
	MaxPixels = 100_000_000 // width*height
)

// checkDims refuses dimensions before anything is allocated for them.
func checkDims(format string, w, h int) error {
	if w <= 0 || h <= 0 {
		return &FormatError{Format: format, Reason: fmt.Sprintf("invalid dimensions %dx%d", w, h)}
	}
	if w > MaxSide || h > MaxSide {
		return &UnsupportedError{Format: format,
			Reason: fmt.Sprintf("dimensions %dx%d: a side over the limit of %d", w, h, MaxSide)}
	}
	if w*h > MaxPixels {
		return &UnsupportedError{Format: format,
			Reason: fmt.Sprintf("dimensions %dx%d: %d pixels, over the limit of %d", w, h, w*h, MaxPixels)}
	}
	return nil
}
