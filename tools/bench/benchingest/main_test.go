package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

// The links of the tree ingest reads live in a temporary directory, so
// they must resolve whatever form --images was given in: a relative
// --images made every link dangle, and ingest found no images.
func TestLinkTreeResolves(t *testing.T) {
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "imgs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n01440764_a.JPEG", "n01443537_b.JPEG", "noclass.JPEG"} {
		if err := os.WriteFile(filepath.Join(work, "imgs", name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(work)
	for _, tc := range []struct {
		name, images string
	}{
		{"relative", "imgs"},
		{"relative with dot", "./imgs/"},
		{"absolute", filepath.Join(work, "imgs")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := realJPEGs(tc.images)
			if err != nil || len(src) != 3 {
				t.Fatalf("realJPEGs(%q) = %v, %v", tc.images, src, err)
			}
			tree := filepath.Join(t.TempDir(), "tree")
			links, err := linkTree(src, 2, tree)
			if err != nil {
				t.Fatal(err)
			}
			if len(links) != 4 { // noclass.JPEG has no <wnid>_ prefix
				t.Fatalf("%d links, want 4", len(links))
			}
			for _, l := range links {
				if b, err := os.ReadFile(l); err != nil || len(b) == 0 {
					t.Fatalf("link %s does not resolve: %v", l, err)
				}
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"one\n", 5, "  | one\n"},
		{"a\nb\nc\nd\n", 2, "  | c\n  | d\n"},
		{"Traceback:\n  x\nOSError: cannot identify image file 'j.JPEG'", 1, "  | OSError: cannot identify image file 'j.JPEG'\n"},
	} {
		if got := lastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// Values that cannot make a run are usage errors found before any work:
// --rounds 0 printed NaN and +Inf ratios with exit 0, and a word among the
// flags dropped the flags after it.
func TestFlagMistakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"--rounds", "0"}, "--rounds 0: want at least 1"},
		{[]string{"--reps", "-1"}, "--reps -1: want at least 1"},
		{[]string{"--size", "0"}, "--size 0: want 1 to 4096"},
		{[]string{"extra", "--rounds", "1"}, `unexpected argument "extra": it takes flags only`},
		{[]string{"--mode", "other"}, `--mode "other": the only mode is decode`},
		{[]string{"--core", "-1"}, "--core -1: this process may run on CPUs "},
		{[]string{"--core", "100000"}, "--core 100000: this process may run on CPUs "},
	} {
		if runtime.GOOS != "linux" && slices.Contains(c.args, "--core") {
			continue
		}
		var so, se bytes.Buffer
		if code := run(c.args, &so, &se); code != cli.ExitUsage || !strings.Contains(se.String(), c.say) {
			t.Errorf("%q: exit %d, stderr %q; want %d saying %q", c.args, code, se.String(), cli.ExitUsage, c.say)
		}
	}
}
