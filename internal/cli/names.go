package cli

import (
	"fmt"
	"io/fs"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Name returns a file name or path as a message line can carry it: as is,
// unless it holds bytes that are not UTF-8 or characters that would break
// the line (a newline, a tab, other controls); then Go-quoted, so that the
// name printed is the name on disk, escapes and all.
func Name(p string) string {
	if !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	for _, r := range p {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(p)
		}
	}
	return p
}

// FileKind names a file type in words, for messages about a path that is
// not the regular file expected there ("d---------" reads as
// permissions).
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return fmt.Sprintf("of type %v", m.Type())
}

// Count is n and its noun, singular for 1: "1 shard", "3 shards".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
