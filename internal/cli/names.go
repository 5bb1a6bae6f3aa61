package cli

import (
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
