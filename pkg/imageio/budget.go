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
}

func (b *decodeBudget) reserve(n int64) reservation {
	if n < smallDecode || b.sem == nil {
		return reservation{}
	}
	n = min(n, b.size) // larger than the budget: wait until alone
	b.sem.Acquire(context.Background(), n)
	b.mu.Lock()
	b.used += n
	b.peak = max(b.peak, b.used)
	b.mu.Unlock()
	return reservation{b: b, n: n}
}

func (r *reservation) release() {
	if r.b == nil {
		return
	}
	if r.n >= collectAfter {
		// The decoded image is garbage now, but the collector would let
		// the heap grow to twice what is live before reclaiming it, so
		// the next large decode would sit beside it. Collecting costs
		// milliseconds beside a decode of seconds, and comes before the
		// budget is handed on: collected after, while the next decode
		// allocated, 2 workers decoding 10,000² PNGs one at a time
		// peaked at 1.4 GB of RSS.
		runtime.GC()
	}
	r.b.mu.Lock()
	r.b.used -= r.n
	r.b.mu.Unlock()
	r.b.sem.Release(r.n)
	*r = reservation{}
}

// collectAfter is the reservation from which giving it back collects.
const collectAfter = 128 << 20

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
