//go:build unix

package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A regular file opens and reads; a named pipe nobody writes to, a
// directory and a device are refused at once, saying what they are, where
// a plain open of the pipe would wait for ever.
func TestOpenRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.json")
	if err := os.WriteFile(file, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "meta.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, link} {
		b, err := ReadFile(p, 0)
		if err != nil || string(b) != "12345" {
			t.Errorf("ReadFile(%s) = %q, %v", p, b, err)
		}
	}
	if _, err := ReadFile(file, 4); err == nil || !strings.Contains(err.Error(), "5 bytes, more than the 4") {
		t.Errorf("ReadFile over its limit: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p, kind := range map[string]string{fifo: "a named pipe", dir: "a directory", "/dev/zero": "a character device"} {
			_, _, err := Open(p)
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), kind+", not a regular file") || !strings.Contains(err.Error(), p) {
				t.Errorf("Open(%s) = %v, want %s refused", p, err, kind)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Open blocked on a named pipe")
	}
}
