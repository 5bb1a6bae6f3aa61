// Package fashionmnist reads the Fashion-MNIST dataset from its IDX files
// (plain or gzipped) and owns the made-up ImageNet-style synset ids under
// which tools/mkdemo publishes it, so that the demo, its tests and any
// later consumer agree on one mapping from label to WNID.
//
// The parsers never trust a header: dimensions are bounded, and memory
// grows with the bytes actually read rather than with what a header claims,
// so a corrupt or hostile file costs an error, not a panic or an OOM.
package fashionmnist

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// NumClasses is the number of Fashion-MNIST labels.
const NumClasses = 10

// ClassNames are the official label names, indexed by label.
var ClassNames = [NumClasses]string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// WNID returns the synset id standing in for label: "n99000000" for 0
// through "n99000009" for 9. Real WordNet noun offsets stay below 2^24
// (about n15000000), so the n99 range cannot collide with an ImageNet
// class, and the ids sort in label order, so sorted-WNID class indexing
// (ingest's rule) gives back the Fashion-MNIST label itself.
func WNID(label int) string { return fmt.Sprintf("n%08d", 99_000_000+label) }

// ErrFormat is wrapped by every error about malformed IDX content, as
// opposed to I/O errors, so callers can tell a corrupt file from a failing
// disk.
var ErrFormat = errors.New("not a valid IDX file")

// IDX type code for unsigned bytes, the third byte of the magic.
const idxUbyte = 0x08

// maxDim bounds each header dimension, and maxBytes the payload: far above
// Fashion-MNIST's (60000 × 28 × 28 = 47 MB) yet well inside int64.
const (
	maxDim   = 1 << 28
	maxBytes = 1 << 34
)

// ReadImages parses an IDX3 ubyte file (magic 0x00000803): n images of
// rows×cols pixels, row-major, image after image. Gzip input is detected by
// its magic and decompressed.
func ReadImages(r io.Reader) (n, rows, cols int, pix []uint8, err error) {
	dims, body, err := readHeader(r, 3)
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("fashionmnist: images: %w", err)
	}
	n, rows, cols = dims[0], dims[1], dims[2]
	if rows == 0 || cols == 0 {
		return 0, 0, 0, nil, fmt.Errorf("fashionmnist: images: %w: empty image size %dx%d", ErrFormat, rows, cols)
	}
	// Divide rather than multiply: three 28-bit dimensions overflow int64.
	img := int64(rows) * int64(cols)
	if int64(n) > maxBytes/img {
		return 0, 0, 0, nil, fmt.Errorf("fashionmnist: images: %w: %d×%d×%d pixels is implausibly large", ErrFormat, n, rows, cols)
	}
	pix, err = readBody(body, int64(n)*img)
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("fashionmnist: images (%d of %dx%d): %w", n, rows, cols, err)
	}
	return n, rows, cols, pix, nil
}

// ReadLabels parses an IDX1 ubyte file (magic 0x00000801), gzipped or not.
func ReadLabels(r io.Reader) ([]uint8, error) {
	dims, body, err := readHeader(r, 1)
	if err != nil {
		return nil, fmt.Errorf("fashionmnist: labels: %w", err)
	}
	lab, err := readBody(body, int64(dims[0]))
	if err != nil {
		return nil, fmt.Errorf("fashionmnist: labels (%d): %w", dims[0], err)
	}
	return lab, nil
}

// readHeader undoes gzip if present, checks the magic for a ubyte file of
// rank dims, and returns the dimensions and a reader positioned at the data.
func readHeader(r io.Reader, rank int) ([]int, io.Reader, error) {
	br := bufio.NewReader(r)
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		br = bufio.NewReader(zr)
	}
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: reading magic: %v", ErrFormat, err)
	}
	if magic[0] != 0 || magic[1] != 0 || magic[2] != idxUbyte || int(magic[3]) != rank {
		return nil, nil, fmt.Errorf("%w: magic %#08x, want %#08x", ErrFormat,
			binary.BigEndian.Uint32(magic[:]), idxUbyte<<8|rank)
	}
	dims := make([]int, rank)
	for i := range dims {
		var d [4]byte
		if _, err := io.ReadFull(br, d[:]); err != nil {
			return nil, nil, fmt.Errorf("%w: reading dimension %d: %v", ErrFormat, i, err)
		}
		v := binary.BigEndian.Uint32(d[:])
		if v > maxDim {
			return nil, nil, fmt.Errorf("%w: dimension %d is %d", ErrFormat, i, v)
		}
		dims[i] = int(v)
	}
	return dims, br, nil
}

// readBody reads exactly size bytes and then insists on end of input, so
// trailing garbage is rejected and a gzip stream's checksum, which is only
// checked at its end, is verified. It allocates up front only for sizes a
// real file could have; beyond that the buffer grows as data arrives, so a
// lying header cannot reserve gigabytes.
func readBody(r io.Reader, size int64) ([]byte, error) {
	const eager = 64 << 20
	var data []byte
	if size <= eager {
		data = make([]byte, size)
		if got, err := io.ReadFull(r, data); err != nil {
			return nil, short(err, int64(got), size)
		}
	} else {
		var buf bytes.Buffer
		buf.Grow(eager)
		got, err := buf.ReadFrom(io.LimitReader(r, size))
		if err == nil && got < size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, short(err, got, size)
		}
		data = buf.Bytes()
	}
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return nil, fmt.Errorf("%w: data continues past the %d bytes the header declares", ErrFormat, size)
	case err != io.EOF:
		return nil, fmt.Errorf("%w: after data: %v", ErrFormat, err)
	}
	return data, nil
}

// short reports a failed read of the data: running out of input is a
// format error, anything else (a disk error, a bad gzip checksum) is
// passed on wrapped.
func short(err error, got, size int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: %d of %d data bytes", ErrFormat, got, size)
	}
	return fmt.Errorf("reading data byte %d of %d: %w", got, size, err)
}

// Set is one split of the dataset in memory.
type Set struct {
	N, Rows, Cols int
	// Pixels holds N images of Rows×Cols grey levels, row-major, image
	// after image. 0 is the background, 255 full ink.
	Pixels []uint8
	Labels []uint8 // N labels, each < NumClasses
}

// Image returns image i's pixels, a sub-slice of Pixels.
func (s *Set) Image(i int) []uint8 {
	sz := s.Rows * s.Cols
	return s.Pixels[i*sz : (i+1)*sz : (i+1)*sz]
}

// Files returns the image and label file names of split ("train" or
// "t10k") in dir, as Debian's dataset-fashion-mnist and the original
// distribution name them.
func Files(dir, split string) (images, labels string) {
	return filepath.Join(dir, split+"-images-idx3-ubyte.gz"),
		filepath.Join(dir, split+"-labels-idx1-ubyte.gz")
}

// Load reads split "train" (60,000 images) or "t10k" (10,000) from dir. It
// takes the .gz files, or the uncompressed ones when only those exist, and
// checks that images and labels agree.
func Load(dir, split string) (*Set, error) {
	if split != "train" && split != "t10k" {
		return nil, fmt.Errorf("fashionmnist: split %q: want \"train\" or \"t10k\"", split)
	}
	imgPath, labPath := Files(dir, split)
	s := &Set{}
	err := readFile(imgPath, func(r io.Reader) (err error) {
		s.N, s.Rows, s.Cols, s.Pixels, err = ReadImages(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = readFile(labPath, func(r io.Reader) (err error) {
		s.Labels, err = ReadLabels(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(s.Labels) != s.N {
		return nil, fmt.Errorf("fashionmnist: %s: %d images but %d labels", dir, s.N, len(s.Labels))
	}
	for i, l := range s.Labels {
		if l >= NumClasses {
			return nil, fmt.Errorf("fashionmnist: %s record %d: label %d out of range", labPath, i, l)
		}
	}
	return s, nil
}

// readFile opens path, or path without ".gz" when only that exists, and
// wraps parse errors with the file name.
func readFile(path string, parse func(io.Reader) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if g, err2 := os.Open(path[:len(path)-len(".gz")]); err2 == nil {
			f, err = g, nil
		}
	}
	if err != nil {
		return fmt.Errorf("fashionmnist: %w", err)
	}
	defer f.Close()
	if err := parse(f); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return nil
}
