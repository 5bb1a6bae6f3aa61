package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable is a whole line of text (a warning naming several files) made
// safe for a terminal: each rune Name would quote (a control character,
// an escape sequence's ESC, a newline inside a name, a byte that is not
// UTF-8) is written as its Go escape, \x1b or \n, in place, and the rest
// is left as it is.
func Printable(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case !unicode.IsPrint(r) && r != ' ':
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

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
	return fmt.Sprintf("%d %s", n, Plural(n, one, many))
}

// Plural is one for n == 1, else many: for the words around a count
// ("1 entry that is not an image", "2 entries that are not images").
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// NearestFolder walks up from dir to the first path that exists: the
// folder an output folder dir would be made in (dir itself when it is
// one), or the file that keeps dir from being a folder (dir itself, or a
// file where one of its parent folders should be). Commands check their
// output folder with it before any work, and name what is in the way.
func NearestFolder(dir string) (folder, file string) {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			if !fi.IsDir() {
				return "", p
			}
			return p, ""
		}
		if filepath.Dir(p) == p {
			return "", ""
		}
	}
}

// FirstFew joins up to n names, and says how many more there are.
func FirstFew(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// LinkTarget says whether path itself (not what it leads to) is a
// symbolic link, and where it points.
func LinkTarget(path string) (target string, isLink bool) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false
	}
	target, _ = os.Readlink(path)
	return target, true
}

// DanglingLink says "dangling symbolic link to TARGET" when path is a
// symbolic link whose target is gone (a stat of it fails as not found),
// "" otherwise.
func DanglingLink(path string) string {
	target, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return "dangling symbolic link to " + Name(target)
}

// Missing takes flags and the paths they name, in pairs, and says "FLAG
// PATH does not exist" (or that it is a dangling link) for the first
// input that is not there: a typo in a path is a usage error, said before
// any work, rather than a failure found later under another file's name.
// An empty path (a flag not given) is passed over.
func Missing(flagsAndPaths ...string) error {
	for i := 0; i+1 < len(flagsAndPaths); i += 2 {
		flag, path := flagsAndPaths[i], flagsAndPaths[i+1]
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if d := DanglingLink(path); d != "" {
			return fmt.Errorf("%s %s is a %s", flag, path, d)
		}
		return fmt.Errorf("%s %s does not exist", flag, path)
	}
	return nil
}

// CannotWrite says "--out OUT: cannot write in FOLDER: why" when files
// cannot be made in folder, the nearest existing folder of out (as
// NearestFolder gives it; "" is passed over): another user's folder, a
// read-only mount, found before any work rather than at the first write.
func CannotWrite(out, folder string) error {
	if folder == "" {
		return nil
	}
	if err := writableDir(folder); err != nil {
		return fmt.Errorf("--out %s: cannot write in %s: %v", out, folder, err)
	}
	return nil
}
