package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/shards"
)

// TestIndependentReader reads ingest's shards, of every codec, with
// shards/testdata/read_shards.py: a second reader written from
// shards/FORMAT.md alone, in Python, sharing no code with shards. It must
// find nothing wrong (headers, records, CRCs, index, trailer, meta.json)
// and decode every record to the pixels the Go decoder gives. It needs
// python3 with numpy and zstandard (Debian's python3-numpy and
// python3-zstandard, which `just setup` installs) and skips without them.
func TestIndependentReader(t *testing.T) {
	// Debian's Python first, where `just setup` installs the modules; a
	// python3 on PATH (a virtual environment's) may lack them.
	py := ""
	var tried []string
	for _, c := range []string{"/usr/bin/python3", "python3"} {
		out, err := exec.Command(c, "-c", "import numpy, zstandard").CombinedOutput()
		if err == nil {
			py = c
			break
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", c, err, lastLine(out)))
	}
	if py == "" {
		t.Skipf("no python3 with numpy and zstandard, so the independent reader cannot run (%s)", strings.Join(tried, "; "))
	}
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "shards", "testdata", "read_shards.py")
	root, _ := makeTree(t, 3)
	last := ""
	// Python's CRC-32C is a byte loop: sizes are kept small, but for
	// grad-huff at 260 px, where each plane is two bands (252 + 8 rows).
	for _, c := range []struct {
		codec shards.Codec
		size  int
	}{{shards.CodecZstd, 40}, {shards.CodecGradZstd, 40}, {shards.CodecGradHuff, 260}} {
		codec := c.codec
		out := t.TempDir()
		if _, err := ingestWith(t, context.Background(), root, Options{Out: out, Size: c.size, Seed: 3, ShardSize: 6, Workers: 2, Codec: codec}); err != nil {
			t.Fatal(err)
		}
		last = out
		cmd := exec.Command(py, script, out, "--digests")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: the independent reader failed (%v):\n%s%s", codec, err, stdout.String(), stderr.String())
		}
		// Every grad-huff block mode is a different path in both readers:
		// the Huffman one must have been taken.
		if codec == shards.CodecGradHuff && !huffmanRead.MatchString(stdout.String()) {
			t.Errorf("grad-huff: no Huffman-coded block was read:\n%s", firstLine(stdout.String()))
		}
		theirs := map[string]string{}
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 5 && f[0] == "DIGEST" {
				theirs[f[1]+" "+f[2]] = f[3] + " " + f[4]
			} else if strings.HasPrefix(sc.Text(), "FAIL") {
				t.Errorf("%v: %s", codec, sc.Text())
			}
		}
		ours := goDigests(t, out)
		if len(ours) == 0 || len(ours) != len(theirs) {
			t.Fatalf("%v: the Go reader has %d records, the independent one %d", codec, len(ours), len(theirs))
		}
		for k, v := range ours {
			if theirs[k] != v {
				t.Errorf("%v, %s: Go gives label and pixels %s, the independent reader %s", codec, k, v, theirs[k])
			}
		}
	}

	// A meta.json a stopped rewrite left (FORMAT.md's unfinished note) is
	// read, and the split named as a failure, not a crash on the field.
	m, err := shards.ReadMeta(last)
	if err != nil {
		t.Fatal(err)
	}
	delete(m.Splits, "train")
	m.Stats = nil
	m.Unfinished = map[string]string{"train": "a test's note"}
	if err := shards.WriteMeta(last, m); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, last).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "FAIL train: unfinished: a test's note") || strings.Contains(string(out), "Traceback") {
		t.Errorf("an unfinished split: exit %d (%v):\n%s", code, err, out)
	}
	// Its usage mistakes and a missing meta.json are lines, not tracebacks.
	for _, c := range []struct {
		args []string
		code int
		say  string
	}{{nil, 2, "usage: read_shards.py DIR"}, {[]string{"--help"}, 0, "usage: read_shards.py DIR"}, {[]string{t.TempDir()}, 1, "FAIL "}} {
		out, err := exec.Command(py, append([]string{script}, c.args...)...).CombinedOutput()
		if code := exitCode(err); code != c.code || !strings.Contains(string(out), c.say) || strings.Contains(string(out), "Traceback") {
			t.Errorf("read_shards.py %q: exit %d:\n%s", c.args, code, out)
		}
	}
}

// exitCode is a finished command's exit status (-1 when it did not run).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// goDigests maps "split id" to "label sha256(pixels)" for every record
// of the shards in dir, as the Go decoder reads them.
func goDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := shards.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for split, sp := range m.Splits {
		for _, sh := range sp.Shards {
			r, err := shards.Open(filepath.Join(dir, sh.File))
			if err != nil {
				t.Fatal(err)
			}
			for i := range r.Len() {
				var rec shards.Record
				if _, err := r.ReadRecord(i, &rec, nil); err != nil {
					t.Fatal(err)
				}
				pix := make([]byte, rec.W*rec.H*3)
				if err := dec.Decode(pix, rec.Codec, rec.Payload, rec.W, rec.H); err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(pix)
				out[fmt.Sprintf("%s %d", split, rec.ID)] = fmt.Sprintf("%d %s", rec.Label, hex.EncodeToString(sum[:]))
			}
			r.Close()
		}
	}
	return out
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// huffmanRead matches the reader's summary when it read mode-2 blocks.
var huffmanRead = regexp.MustCompile(`grad-huff block modes \{[^}]*\b2: [1-9]`)

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }
