package main

import (
	"os"
	"path/filepath"
	"testing"
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
