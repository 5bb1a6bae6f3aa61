// Package cli holds what the commands share in how they talk to a person:
// progress display (a bar on a terminal, periodic plain lines otherwise),
// exit codes, and flag sets whose --help and bad flags end in those codes.
package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Exit codes shared by the commands.
const (
	ExitOK      = 0
	ExitFailure = 1 // the work could not be done
	ExitUsage   = 2 // bad flags or arguments
	ExitSkipped = 3 // done, but --strict and some inputs were skipped
	ExitDamaged = 4 // verification found damage
	// ExitInterrupted: stopped by a signal (Ctrl-C, SIGTERM, SIGHUP) with
	// the work so far kept, so the same command (train: --resume) goes
	// on; 128 + SIGINT, as a shell reports a Ctrl-C.
	ExitInterrupted = 130
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Progress shows progress of a counted task: a progressbar with rate and
// ETA on a terminal, a plain line every interval otherwise (logs, CI).
type Progress struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	w        io.Writer
	desc     string
	total    int
	done     int // the last count Set was given
	last     time.Time
	start    time.Time
	interval time.Duration
}

// NewProgress starts a display for total items on w (usually os.Stderr).
// quiet turns it off.
func NewProgress(w *os.File, desc string, total int, quiet bool) *Progress {
	p := &Progress{w: w, desc: desc, total: total, start: time.Now(), last: time.Now(), interval: 10 * time.Second}
	if quiet {
		p.w = nil
		return p
	}
	if IsTerminal(w) {
		p.bar = newBar(w, desc, total)
	}
	return p
}

// newBar is the terminal display: count, rate and ETA, redrawn at most
// every 100 ms.
func newBar(w io.Writer, desc string, total int) *progressbar.ProgressBar {
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}

// Set reports that done items are finished.
func (p *Progress) Set(done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if p.bar != nil {
		// Drawn at 0 done, the bar has no rate yet and shows "0 img/hr";
		// it appears with the first item instead, milliseconds later.
		if done > 0 {
			p.bar.Set(done)
		}
		return
	}
	if p.w == nil || time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(done) / el
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.total-done)/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d (%.1f%%) %.1f img/s, ETA %s\n", p.desc, done, p.total, 100*float64(done)/float64(max(p.total, 1)), rate, eta)
}

// Finish closes the bar. A task that stopped short (interrupted, failed)
// keeps its count on the bar: progressbar's own Finish would fill it.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.bar == nil:
	case p.done >= p.total:
		p.bar.Finish()
	case p.done > 0:
		p.bar.Exit()
	}
}
