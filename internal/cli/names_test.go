package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"train/n01/a.JPEG", "train/n01/a.JPEG"},
		{"with space/é.JPEG", "with space/é.JPEG"},
		{"-n01/--help.JPEG", "-n01/--help.JPEG"},
		{"broken\xffname.JPEG", `"broken\xffname.JPEG"`},
		{"two\nlines.JPEG", `"two\nlines.JPEG"`},
		{"tab\there", `"tab\there"`},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFileKind(t *testing.T) {
	for _, tc := range []struct {
		m    fs.FileMode
		want string
	}{
		{fs.ModeDir | 0o755, "a directory"},
		{fs.ModeSymlink, "a symbolic link"},
		{fs.ModeNamedPipe, "a named pipe"},
		{fs.ModeSocket, "a socket"},
		{fs.ModeDevice | fs.ModeCharDevice, "a character device"},
		{fs.ModeDevice, "a device"},
		{fs.ModeIrregular, "of type ?---------"},
	} {
		if got := FileKind(tc.m); got != tc.want {
			t.Errorf("FileKind(%v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

// A warning line that holds odd names keeps its text and shows each odd
// rune as its escape: no terminal escape or line break gets through.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"train: skipped n01 (3 entries)":            "train: skipped n01 (3 entries)",
		"skipped n0\x1b[31mevil\nfake: not a class": `skipped n0\x1b[31mevil\nfake: not a class`,
		"bad \xff byte, ok é":                       `bad \xff byte, ok é`,
		"tab\there":                                 `tab\there`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMissing(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.ckpt")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "gone"), link); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	for _, tc := range []struct{ path, want string }{
		{"", ""},
		{dir, ""},
		{file, ""},
		{filepath.Join(dir, "absent"), "--x " + filepath.Join(dir, "absent") + " does not exist"},
		{link, "--x " + link + " is a dangling symbolic link to " + filepath.Join(dir, "gone")},
	} {
		got := ""
		if err := Missing("--x", tc.path); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Missing(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	// Several: the first that is not there, the flags given in order.
	absent := filepath.Join(dir, "absent")
	if err := Missing("--a", file, "--b", "", "--c", absent, "--d", link); err == nil || err.Error() != "--c "+absent+" does not exist" {
		t.Errorf("Missing of several: %v", err)
	}
	if err := Missing("--a", file, "--b", dir); err != nil {
		t.Errorf("Missing of paths that are there: %v", err)
	}
}
