package cli

import (
	"io/fs"
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
