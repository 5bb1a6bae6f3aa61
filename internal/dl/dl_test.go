//go:build linux

package dl

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestOpenReason opens missing libraries from many goroutines at once:
// each error must carry the loader's reason for its own file. Unpinned,
// dlerror was read on another thread and came back empty or another's.
func TestOpenReason(t *testing.T) {
	const workers, rounds = 16, 300
	var wg sync.WaitGroup
	bad := make([]string, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				want := fmt.Sprintf("libmissing%d_%d.so", w, r)
				_, err := Open("/nonexistent/"+want, r%2 == 0)
				if err == nil || !strings.Contains(err.Error(), want) {
					bad[w] = fmt.Sprintf("err = %v, want one naming %s", err, want)
					return
				}
				runtime.Gosched() // move goroutines between threads
			}
		})
	}
	wg.Wait()
	for _, b := range bad {
		if b != "" {
			t.Error(b)
		}
	}
}

func TestOpenSym(t *testing.T) {
	for _, global := range []bool{false, true} {
		h, err := Open("libc.so.6", global)
		if err != nil {
			t.Skipf("no libc.so.6 to open: %v", err)
		}
		if s, err := Sym(h, "strlen"); err != nil || s == 0 {
			t.Errorf("strlen: %#x, %v", s, err)
		}
		if _, err := Sym(h, "no_such_symbol_here"); err == nil {
			t.Error("a missing symbol was found")
		}
		if err := Close(h); err != nil {
			t.Error(err)
		}
	}
}
