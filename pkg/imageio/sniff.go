package imageio

import (
	"bytes"
	"encoding/hex"
	"fmt"
)

// Format is an image container recognised by its leading bytes.
type Format int

const (
	FormatUnknown Format = iota
	FormatJPEG
	FormatPNG
	FormatGIF
	FormatBMP
	FormatWebP
	FormatTIFF
)

var formatNames = [...]string{"unknown", "jpeg", "png", "gif", "bmp", "webp", "tiff"}

func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// Sniff identifies data by its magic bytes. File names are never consulted:
// ILSVRC2012 has a PNG named .JPEG, and stdlib image/jpeg rejects it with a
// misleading "missing SOI marker".
func Sniff(data []byte) Format {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return FormatGIF
	case len(data) >= 14 && data[0] == 'B' && data[1] == 'M':
		return FormatBMP
	case len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")):
		return FormatWebP
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return FormatTIFF
	}
	return FormatUnknown
}

// CheckSignature is the error Decode would give for a file beginning with
// head (its first 32 bytes or more, for the texts it names) when they are
// no image's signature, and nil when they are: a caller can refuse a large
// file that is no image before it reads the rest.
func CheckSignature(head []byte) error {
	if Sniff(head) == FormatUnknown {
		return unknownFormatError(head)
	}
	return nil
}

// unknownFormatError names the first bytes so a report line shows what the
// file really was (HTML error pages start 3c21 or 3c68).
func unknownFormatError(data []byte) error {
	if len(data) == 0 {
		return &FormatError{Reason: "empty file", Err: ErrEmpty}
	}
	n := min(len(data), 8)
	reason := "not an image: unknown signature " + hex.EncodeToString(data[:n])
	// Text where an image should be is most often one of these, which
	// say what to do better than their bytes.
	text := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case bytes.HasPrefix(data, []byte("version https://git-lfs")):
		reason += " (a Git LFS pointer, not the file: `git lfs pull` fetches it)"
	case hasFoldPrefix(text, "<!doctype html"), hasFoldPrefix(text, "<html"):
		reason += " (an HTML page: a download that got an error page?)"
	}
	return &FormatError{Reason: reason}
}

func hasFoldPrefix(data []byte, prefix string) bool {
	return len(data) >= len(prefix) && bytes.EqualFold(data[:len(prefix)], []byte(prefix))
}

// jpegHeader is what scanJPEGHeader learns from the markers before the
// first scan.
type jpegHeader struct {
	width, height int
	components    int
	progressive   bool
	arithmetic    bool // SOF9–SOF15: arithmetic entropy coding
	adobe         bool // APP14 "Adobe" segment present
	adobeXform    uint8
	sosOffset     int // offset of the first SOS marker
}

// scanJPEGHeader walks the marker segments from SOI to the first SOS. It
// decodes nothing; it exists to classify failures consistently for both
// backends (a file cut inside its header is "truncated", whatever the
// decoder's own message says) and to read the Adobe transform, which
// TurboJPEG does not expose.
func scanJPEGHeader(data []byte) (jpegHeader, error) {
	var h jpegHeader
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return h, &FormatError{Format: "jpeg", Reason: "missing SOI marker"}
	}
	truncated := func(where string) error {
		return &FormatError{Format: "jpeg", Reason: "truncated JPEG (file ends inside the " + where + ")", Err: ErrTruncated}
	}
	pos := 2
	sawSOF := false
	for {
		if pos >= len(data) {
			return h, truncated("header")
		}
		// libjpeg skips junk between segments with only a warning
		// (JWRN_EXTRANEOUS_DATA), and so does image/jpeg; so does this.
		for pos < len(data) && data[pos] != 0xFF {
			pos++
		}
		// Any number of 0xFF fill bytes may precede a marker code.
		for pos < len(data) && data[pos] == 0xFF {
			pos++
		}
		if pos >= len(data) {
			return h, truncated("header")
		}
		m := data[pos]
		pos++
		switch {
		case m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			continue // standalone markers carry no length
		case m == 0xD9:
			return h, &FormatError{Format: "jpeg", Reason: "corrupt JPEG: end of image before any scan"}
		}
		if pos+2 > len(data) {
			return h, truncated("header")
		}
		n := int(data[pos])<<8 | int(data[pos+1])
		if n < 2 {
			return h, &FormatError{Format: "jpeg", Reason: fmt.Sprintf("corrupt JPEG: marker 0x%02x has length %d", m, n)}
		}
		if pos+n > len(data) {
			return h, truncated("header")
		}
		seg := data[pos+2 : pos+n]
		switch {
		case m == 0xDA:
			if !sawSOF {
				return h, &FormatError{Format: "jpeg", Reason: "corrupt JPEG: scan before frame header"}
			}
			h.sosOffset = pos - 2
			return h, nil
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			if len(seg) < 6 {
				return h, &FormatError{Format: "jpeg", Reason: "corrupt JPEG: short frame header"}
			}
			h.height = int(seg[1])<<8 | int(seg[2])
			h.width = int(seg[3])<<8 | int(seg[4])
			h.components = int(seg[5])
			h.progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE
			h.arithmetic = m >= 0xC9
			sawSOF = true
		case m == 0xEE && len(seg) >= 12 && bytes.HasPrefix(seg, []byte("Adobe")):
			h.adobe = true
			h.adobeXform = seg[11]
		}
		pos += n
	}
}

// hasEOIAfterScan reports whether an EOI marker follows the first scan.
// Entropy-coded data stuffs every 0xFF with a zero byte, so FFD9 there can
// only be the real end marker: a file without one was cut short (or lost
// its last two bytes, which libjpeg also reports as a premature end).
func hasEOIAfterScan(data []byte) bool {
	h, err := scanJPEGHeader(data)
	if err != nil {
		return false
	}
	return bytes.LastIndex(data[h.sosOffset:], []byte{0xFF, 0xD9}) >= 0
}
