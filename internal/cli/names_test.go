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
