package imageio

import (
	"context"
	"image/color"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// A decode's pixel memory is bounded per image (MaxPixels), not per
// process: a 419 KB PNG of one colour at 10000×10000 costs 700 MB of RSS
// to decode (measured), so a 16-worker ingest over a folder of such files
// could ask for 11 GB at once. The decode budget bounds what the large
// decodes of all Decoders in the process hold together: each reserves its
// estimate after reading the header and gives it back when the caller is
// done with the pixels, waiting in line (FIFO, so a large image is not
// starved by smaller ones) while the budget is spent. One image larger
// than the whole budget waits for the others to finish and then runs
// alone. Ordinary photos stay under smallDecode and never touch it, so the
// hot path takes no lock. Scheduling is all it changes: every image
// decodes to the same pixels.

// DefaultDecodeBudget is the budget a process starts with: 2 GiB.
const DefaultDecodeBudget = 2 << 30

// smallDecode is the estimate below which a decode does not reserve: a
// 4-megapixel image through the Go decoders (about 7 bytes a pixel with
// the RGB copy), or a JPEG that libjpeg-turbo scales down to 10
// megapixels. So every Decoder may hold up to this much outside the
// budget, which therefore bounds the large decodes, not all of them.
const smallDecode = 32 << 20

type decodeBudget struct {
	sem  *semaphore.Weighted // nil: unlimited
	size int64
	mu   sync.Mutex
	used int64 // reserved now, for peak
	peak int64 // the most ever reserved at once (tests)
}

var budget atomic.Pointer[decodeBudget]

func init() { budget.Store(newDecodeBudget(DefaultDecodeBudget)) }

func newDecodeBudget(bytes int64) *decodeBudget {
	b := &decodeBudget{size: bytes}
	if bytes > 0 {
		b.sem = semaphore.NewWeighted(bytes)
	}
	return b
}

// SetDecodeBudget sets the most bytes the large decodes of all Decoders
// may hold at once; 0 or less removes the bound. Decodes already holding
// a reservation finish under the budget they took it from. Ingest's
// --decode-memory sets it.
func SetDecodeBudget(bytes int64) { budget.Store(newDecodeBudget(bytes)) }

// DecodeBudget returns the current budget in bytes (0: unlimited).
func DecodeBudget() int64 { return max(budget.Load().size, 0) }

// reservation is what one decode holds; release gives it back once.
type reservation struct {
	b *decodeBudget
	n int64
	// goHeap is the part of the estimate on the Go heap (not libjpeg's
	// own memory), uncapped: what a collection can give back.
	goHeap int64
}

// reserve waits its turn for n bytes, goHeap of them on the Go heap. It
// gives up with ctx's error when ctx ends first, holding nothing.
func (b *decodeBudget) reserve(ctx context.Context, n, goHeap int64) (reservation, error) {
	if n < smallDecode || b.sem == nil {
		return reservation{}, nil
	}
	n = min(n, b.size) // larger than the budget: wait until alone
	if err := b.sem.Acquire(ctx, n); err != nil {
		return reservation{}, err
	}
	b.mu.Lock()
	b.used += n
	b.peak = max(b.peak, b.used)
	b.mu.Unlock()
	return reservation{b: b, n: n, goHeap: goHeap}, nil
}

func (r *reservation) release() {
	if r.b == nil {
		return
	}
	if r.goHeap >= collectAfter {
		// The decoded image is garbage now, but the collector would let
		// the heap grow to twice what is live before reclaiming it, so
		// the next large decode would sit beside it. Collecting costs
		// tens of milliseconds (25 ms beside an ImageNet-sized listing)
		// against a decode of seconds, and comes before the budget is
		// handed on: collected after, while the next decode allocated,
		// 2 workers decoding 10,000² PNGs one at a time peaked at 1.4 GB
		// of RSS.
		runtime.GC()
	}
	r.b.mu.Lock()
	r.b.used -= r.n
	r.b.mu.Unlock()
	r.b.sem.Release(r.n)
	*r = reservation{}
}

// collectAfter is the Go-heap part of a reservation from which giving it
// back collects.
const collectAfter = 128 << 20

// stdEstimate is what the Go decoders hold to decode data (format f,
// w×h, model m): the decoded image and its RGB copy, and what some kinds
// hold besides: image/jpeg keeps a progressive file's coefficients at
// full size (4 bytes a sample, at most one sample a pixel per component),
// and image/png decodes an interlaced file's seven passes into images of
// their own before composing them (about one image more).
func stdEstimate(f Format, data []byte, w, h int, m color.Model) int64 {
	px := int64(w) * int64(h)
	est := px * stdBytesPerPixel(m)
	if est < smallDecode/4 {
		return est // far too small to matter whatever its kind
	}
	switch f {
	case FormatJPEG:
		if hd, err := scanJPEGHeader(data); err == nil && hd.progressive {
			est += px * int64(max(hd.components, 1)) * 4
		}
	case FormatPNG:
		// IHDR's interlace method, after the signature (8), the chunk's
		// length and type (8), width, height, depth, colour type,
		// compression and filter (10).
		if len(data) > 28 && data[28] == 1 {
			est += px * (stdBytesPerPixel(m) - 3)
		}
	}
	return est
}

// stdBytesPerPixel estimates what the Go decoders hold per pixel for an
// image of model m: the decoded image, plus the RGB copy made from it.
func stdBytesPerPixel(m color.Model) int64 {
	var img int64
	switch m {
	case color.GrayModel, color.AlphaModel:
		img = 1
	case color.Gray16Model, color.Alpha16Model:
		img = 2
	case color.YCbCrModel, color.NYCbCrAModel:
		img = 4 // 4:4:4 with alpha at most
	case color.RGBA64Model, color.NRGBA64Model:
		img = 8
	default: // RGBA, NRGBA, CMYK, palettes (which GIF composes onto RGBA)
		img = 4
	}
	return img + 3
}
