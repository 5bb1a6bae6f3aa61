//go:build unix

package imagenet

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/regfile"
)

// An image swapped, after the listing, for a named pipe or a device is
// refused when it is read, at once and saying what it is: the pipe would
// block the open, /dev/zero would be read up to the size limit (a GiB).
func TestReadFileRefusesSwappedSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.JPEG")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p, kind := range map[string]string{fifo: "a named pipe", "/dev/zero": "a character device"} {
			_, err := readFile(p, nil)
			if !errors.Is(err, regfile.ErrNotRegular) || !strings.Contains(err.Error(), kind) {
				t.Errorf("readFile(%s) = %v, want it refused as %s", p, err, kind)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("readFile blocked or read without end")
	}
}
