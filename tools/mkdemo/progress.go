package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress polls a counter that the workers bump, so the hot loop never
// waits on the display: a bar when stderr is a terminal, otherwise a plain
// line every plainEvery, which stays readable in logs and CI.
type progress struct {
	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// plainEvery is a variable so tests need not wait for it.
var plainEvery = 2 * time.Second

func startProgress(w io.Writer, total int, done *atomic.Int64) *progress {
	p := &progress{quit: make(chan struct{})}
	tick, report, finish := plainReporter(w, total, done)
	if isTerminal(w) {
		tick, report, finish = barReporter(w, total, done)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-p.quit:
				finish()
				return
			}
		}
	}()
	return p
}

// stop ends reporting and waits for the final update; safe to call twice.
func (p *progress) stop() {
	p.stopOnce.Do(func() { close(p.quit) })
	p.wg.Wait()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func barReporter(w io.Writer, total int, done *atomic.Int64) (time.Duration, func(), func()) {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("mkdemo: writing JPEGs"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	report := func() { bar.Set64(done.Load()) }
	finish := func() {
		report()
		bar.Finish()
	}
	return 100 * time.Millisecond, report, finish
}

func plainReporter(w io.Writer, total int, done *atomic.Int64) (time.Duration, func(), func()) {
	start := time.Now()
	report := func() {
		n := done.Load()
		fmt.Fprintf(w, "mkdemo: %d/%d images (%.0f%%), %.0f img/s\n",
			n, total, 100*float64(n)/float64(max(total, 1)), float64(n)/time.Since(start).Seconds())
	}
	// The summary line follows, so the plain reporter prints nothing extra
	// at the end.
	return plainEvery, report, func() {}
}
