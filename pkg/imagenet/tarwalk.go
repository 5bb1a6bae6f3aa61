package imagenet

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// tarMember is one entry of a tar: its name, and for a file where its
// bytes lie in the underlying file.
type tarMember struct {
	name      string
	off, size int64 // a file's bytes (a resolved hard link's are its target's)
	// at is where the entry's headers begin, relative to the start of the
	// tar, or -1 when unknown (after a sparse member, whose stored size
	// archive/tar does not give).
	at   int64
	file bool   // a regular file, or a hard link to an earlier one
	dir  bool   // a directory
	why  string // why it is not a file, for the report
	link string // a link's target
	// dupAt is where an earlier entry of the same name begins (-1 when
	// unknown); dup says there is one.
	dupAt int64
	dup   bool
	// lost marks the damaged stretch [at, resume) of an archive: a header
	// at at did not parse, or zero blocks stood where one belongs (why
	// says which), and the walk picked up again at the next header that
	// parses, or at the end-of-archive blocks (resumeEnd). Whatever
	// members lay in it are unknown; name is empty.
	lost      bool
	resume    int64
	resumeEnd bool
	// ext names what the stretch held when it was one extension header
	// and its data ("PAX records", "a GNU long name"): no member was lost,
	// only what that header said of the member after it.
	ext string
	// appended marks zeros only, from the end-of-archive mark to a header
	// that parses: a second archive appended (cat a.tar b.tar). The walk
	// ends there, as GNU tar's does without -i; nothing was lost.
	appended bool
}

// walkTar calls fn for each entry of the tar archive stored in
// r[base:base+n], in archive order, reading only headers. archive/tar skips
// a member's contents with Seek when its reader can seek, and the
// SectionReader can, so contents are never read; the SectionReader's
// position right after Next is where the member's data starts, as tar
// headers are read unbuffered.
//
// Entries that are not files are passed on with the reason, for the caller
// to decide whether they matter: an image named entry that cannot be read
// is skipped and reported, a class archive that cannot be read stops the
// run. A hard link is resolved to the earlier file it names, as tar
// extracts it, so that the image is not lost. Sparse members are not
// files here: their stored bytes are not the file's contents, so an item
// read by offset would be wrong.
//
// A tar that ends without its end-of-archive blocks is an error: cut at a
// member boundary it still parses, and the members after the cut would be
// lost without a word.
//
// A header that does not parse (a flipped bit fails its checksum) does not
// end the walk, as it does not in GNU tar ("Skipping to next header"): the
// blocks after it are searched for the next header that parses, and the
// stretch between is passed to fn as a lost entry, for the caller to
// report or refuse. Zero blocks where a header belongs read as the end,
// unless a header parses in what follows them: then they are a lost
// stretch too. Only a tar that never parsed at all (not a tar, or
// compressed), one cut inside a header, damage with no header in the
// resyncLimit bytes after it, and damage after a sparse member (where the
// next header begins is unknown) stop it.
//
// Errors of its own name where, the archive's path, and the member they
// concern; fn's errors are returned unchanged.
func walkTar(r io.ReaderAt, base, n int64, where string, fn func(tarMember) error) error {
	sr := io.NewSectionReader(r, base, n)
	tr := tar.NewReader(sr)
	var (
		next int64  // where the next entry begins, or -1 when unknown
		last string // the last entry's name, for errors
		// Every entry by cleaned name, the latest one winning as in
		// extraction: hard links are resolved against it and duplicates
		// found. About 100 bytes an entry: 5 MB for the 50,000 of the
		// validation tar.
		seen = make(map[string]tarMember)
	)
	// lostAt is where the last lost stretch began (-1: none yet), for a
	// hard link whose target may have been in it.
	lostAt := int64(-1)
	// skip passes the lost stretch at..resume to fn and moves the walk on
	// to resume; done says the stretch ran to the end.
	skip := func(m tarMember) (done bool, err error) {
		if m.ext == "" {
			lostAt = m.at
		}
		if err := fn(m); err != nil {
			return false, err
		}
		if m.resumeEnd {
			return true, nil
		}
		if _, err := sr.Seek(m.resume, io.SeekStart); err != nil {
			return false, &PathError{Path: where, Err: err}
		}
		tr, next = tar.NewReader(sr), m.resume
		return false, nil
	}
	for {
		at := next
		h, err := tr.Next()
		if err == io.EOF {
			if !endBlocks(r, base, n, next, sr) {
				return &PathError{Path: where, Err: truncatedEnd(n, last)}
			}
			// Zeros written over headers (the hole a crash or a bad
			// sector leaves) read as the end too, and every member after
			// them would be lost without a word: where data follows the
			// zeros and a header parses in it, the walk goes on there.
			if next < 0 {
				return nil
			}
			resume, end := resync(r, base, n, next)
			if resume < 0 || end {
				return nil // only zeros, or bytes that are no tar, follow
			}
			if firstNonZero(r, base, next, resume) == resume {
				return fn(tarMember{at: next, dupAt: -1, lost: true, appended: true, resume: resume,
					why: lostWhy("the end-of-archive mark", base, next, last, fmt.Sprintf("another archive follows it at offset %d (appended, as cat a.tar b.tar does), whose members are not read, as GNU tar does not without -i", resume))})
			}
			m := tarMember{at: next, dupAt: -1, lost: true, resume: resume,
				why: lostWhy("zero blocks where a tar header belongs", base, next, last, "they read as the end-of-archive mark, yet the bytes after them hold members: a zeroed stretch")}
			if done, err := skip(m); done || err != nil {
				return err
			}
			continue
		}
		if err != nil {
			herr := headerError(r, base, n, at, last, err)
			if at < 0 || errors.Is(err, io.ErrUnexpectedEOF) || (last == "" && compressedAs(r, base, n) != "") {
				return &PathError{Path: where, Err: herr}
			}
			resume, end := resync(r, base, n, at+blockSize)
			if resume < 0 || (end && last == "") {
				// Nothing after it parses: not a tar, or cut short
				// after the damage; either way the first error says most.
				return &PathError{Path: where, Err: herr}
			}
			m := tarMember{at: at, dupAt: -1, lost: true, resume: resume, resumeEnd: end,
				why: lostWhy("a damaged tar header", base, at, last, damageWords(err))}
			m.ext = extensionOnly(r, base, at, resume)
			if done, err := skip(m); done || err != nil {
				return err
			}
			continue
		}
		pos, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return &PathError{Path: where, Err: err}
		}
		last = h.Name
		m := tarMember{name: h.Name, at: at, dupAt: -1}
		stored := h.Size // bytes of data stored after the headers
		switch h.Typeflag {
		case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
			stored = 0 // archive/tar ignores their size field, as tar does
		}
		if isSparse(h) {
			next = -1
		} else {
			// Truncated in the last member's data, Next would not notice,
			// since it seeks lazily; a later ReadItem would.
			if stored > n-pos {
				return &PathError{Path: where + ":" + h.Name, Err: fmt.Errorf("%d bytes at offset %d run past the end of the archive (%d bytes): truncated", stored, pos, n)}
			}
			next = (pos + stored + blockSize - 1) &^ (blockSize - 1)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // metadata for the entries after it (git archive writes one)
		}
		classify(&m, h, base+pos, seen, lostAt)
		key := path.Clean(h.Name)
		if prev, ok := seen[key]; ok {
			m.dup, m.dupAt = true, prev.at
		}
		seen[key] = m
		if err := fn(m); err != nil {
			return err
		}
	}
}

const blockSize = 512

// classify fills in what m is, from its header; off is where its data
// starts in the underlying file.
func classify(m *tarMember, h *tar.Header, off int64, seen map[string]tarMember, lostAt int64) {
	switch {
	case isSparse(h):
		m.why = "sparse member, not supported"
	case h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeCont:
		m.file, m.off, m.size = true, off, h.Size
	case h.Typeflag == tar.TypeLink || h.Typeflag == tar.TypeSymlink:
		// A hard link names an earlier member, as tar extracts it. A
		// symbolic link is followed as the tree layout follows them, where
		// its target is an earlier file of the same archive: GNU tar of a
		// symlinked tree stores links, and dropping them would give fewer
		// images than the tree. Only earlier members can be read in one pass.
		m.link = h.Linkname
		kind, target, missing, outside := "hard link", path.Clean(h.Linkname), "which is not in this archive", false
		if h.Typeflag == tar.TypeSymlink {
			kind, missing = "symbolic link", "which is not an earlier member of this archive"
			target = path.Join(path.Dir(path.Clean(h.Name)), h.Linkname)
			outside = path.IsAbs(h.Linkname) || target == ".." || strings.HasPrefix(target, "../")
		}
		t, ok := seen[target]
		switch {
		case target == path.Clean(h.Name):
			m.why = kind + " to itself"
		case outside:
			m.why = kind + " to " + h.Linkname + ", outside the archive"
		case !ok && lostAt >= 0:
			m.why = fmt.Sprintf("%s to %s, %s (it may have been in the stretch lost to damage at offset %d)", kind, h.Linkname, missing, lostAt)
		case !ok:
			m.why = kind + " to " + h.Linkname + ", " + missing
		case !t.file:
			m.why = kind + " to " + h.Linkname + ", which is not a file: " + t.why
		default:
			m.file, m.off, m.size = true, t.off, t.size
		}
	case h.Typeflag == tar.TypeDir:
		m.dir = true
		m.why = "a directory, not a file"
	case h.Typeflag == tar.TypeChar:
		m.why = "a character device, not a file"
	case h.Typeflag == tar.TypeBlock:
		m.why = "a block device, not a file"
	case h.Typeflag == tar.TypeFifo:
		m.why = "a named pipe, not a file"
	default:
		m.why = fmt.Sprintf("a tar entry of type %q, not a file", h.Typeflag)
	}
}

// isSparse reports whether h describes a GNU sparse file.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// endBlocks reports whether the tar ends with its end-of-archive blocks,
// once archive/tar has returned io.EOF. That happens too when the archive
// simply stops where a header would start, which is how a tar cut at a
// member boundary looks. A lone zero block is accepted: the writer got as
// far as the end marker, so no member can be missing.
func endBlocks(r io.ReaderAt, base, n, next int64, sr io.Seeker) bool {
	if next < 0 {
		// Where the entry after a sparse member began is not known. Before
		// the end, archive/tar stops only on two zero blocks; at the end,
		// the last block must be zero.
		if pos, err := sr.Seek(0, io.SeekCurrent); err == nil && pos < n {
			return true
		}
		next = n - blockSize
		if next < 0 {
			return false
		}
	}
	k := min(2*blockSize, n-next)
	if k < blockSize {
		return false
	}
	b := make([]byte, k)
	if _, err := r.ReadAt(b, base+next); err != nil {
		return false
	}
	return bytes.Count(b, []byte{0}) == len(b)
}

func truncatedEnd(n int64, last string) error {
	if last == "" {
		if n == 0 {
			return errors.New("empty (0 bytes), without even tar's end-of-archive blocks: it looks truncated")
		}
		return errors.New("ends without tar's end-of-archive blocks: it looks truncated")
	}
	return fmt.Errorf("ends without tar's end-of-archive blocks, after member %s: it looks truncated", last)
}

// compressions are the formats a tar is commonly compressed with. They are
// checked only once the first header fails to parse, so a name that
// happens to start with such bytes is no trouble.
var compressions = []struct {
	magic []byte
	name  string
}{
	{[]byte{0x1f, 0x8b}, "gzip"},
	{[]byte("BZh"), "bzip2"},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz"},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"},
}

// compressedAs names the compression r[base:base+n] starts with, or "".
func compressedAs(r io.ReaderAt, base, n int64) string {
	var b [6]byte
	k, _ := r.ReadAt(b[:min(int64(len(b)), n)], base)
	for _, c := range compressions {
		if bytes.HasPrefix(b[:k], c.magic) {
			return c.name
		}
	}
	return ""
}

// resyncLimit is how far past damage resync looks for a header. Past a
// damaged header the next one is a member's length away (an ImageNet
// JPEG: tens of kilobytes to a few megabytes); a file that is no tar at
// all would otherwise be read to its end before its error.
const resyncLimit = 64 << 20

// resync finds where a walk can go on after a header that did not parse:
// the first block at or after from, on the 512-byte grid, that holds a
// header archive/tar reads (its checksum right, and its PAX or GNU
// extensions too), or the end-of-archive blocks with nothing but zeros
// after them (end set). It returns -1 when the archive ends before either,
// or when resyncLimit bytes hold neither.
//
// A block of image bytes passes for a header only if its checksum field
// holds the octal sum of its bytes, which is why GNU tar trusts the same
// test. Inside the training tar's outer archive the blocks after a
// damaged header are a class tar's own headers, so there the caller stops
// instead of going on.
func resync(r io.ReaderAt, base, n, from int64) (int64, bool) {
	buf := make([]byte, 64<<10)
	off := from
	for off+blockSize <= n && off-from < resyncLimit {
		k := min(int64(len(buf)), n-off) &^ (blockSize - 1)
		b := buf[:k]
		if _, err := r.ReadAt(b, base+off); err != nil {
			return -1, false
		}
		adv := k
		for i := int64(0); i < k; i += blockSize {
			blk := b[i : i+blockSize]
			at := off + i
			if isZero(blk) {
				// The end marker, with only the zeros tar pads its last
				// record with after it (or resyncLimit bytes of them):
				// zero blocks inside a member's bytes are not the end,
				// and taking them for it would lose every member after
				// them. The scan goes on from the first byte that is not
				// zero, so a long run of zeros is read once.
				stop := min(n, at+resyncLimit)
				nz := firstNonZero(r, base, at, stop)
				if nz == stop {
					return at, true
				}
				adv = nz&^(blockSize-1) - off
				break
			}
			if !checksumOK(blk) {
				continue
			}
			if _, err := tar.NewReader(io.NewSectionReader(r, base+at, n-at)).Next(); err == nil {
				return at, false
			}
		}
		off += adv
	}
	return -1, false
}

// firstNonZero returns the offset of the first byte of r[base+from:base+n]
// that is not zero, or n.
func firstNonZero(r io.ReaderAt, base, from, n int64) int64 {
	var buf [16 << 10]byte
	for off := from; off < n; {
		b := buf[:min(int64(len(buf)), n-off)]
		if _, err := r.ReadAt(b, base+off); err != nil {
			return off
		}
		for i, c := range b {
			if c != 0 {
				return off + int64(i)
			}
		}
		off += int64(len(b))
	}
	return n
}

// lostWhy words a lost stretch's reason: what was found at offset at of
// the tar (and where that is in the file, for a tar inside another), the
// member before it, and detail.
func lostWhy(what string, base, at int64, last, detail string) string {
	s := fmt.Sprintf("%s at offset %d", what, at)
	if base > 0 {
		s += fmt.Sprintf(" (byte %d of the file)", base+at)
	}
	if last != "" {
		s += ", after member " + last
	}
	return s + ": " + detail
}

// damageWords says in plain words why archive/tar refused a header.
func damageWords(err error) string {
	if errors.Is(err, tar.ErrHeader) {
		return "its checksum or a field does not parse"
	}
	return strings.TrimPrefix(err.Error(), "archive/tar: ")
}

// extensionOnly reports what the lost stretch [at, resume) held when it is
// exactly one extension header and its data, as far as the damaged header
// can still say: its type and size must account for the stretch to the
// byte. A damaged PAX header of GNU tar's pax format (one before every
// member) then costs the member's extended records, not the member.
func extensionOnly(r io.ReaderAt, base, at, resume int64) string {
	var h [blockSize]byte
	if _, err := r.ReadAt(h[:], base+at); err != nil {
		return ""
	}
	var kind string
	switch h[156] {
	case tar.TypeXHeader:
		kind = "PAX records"
	case tar.TypeXGlobalHeader:
		kind = "global PAX records"
	case tar.TypeGNULongName:
		kind = "a GNU long name"
	case tar.TypeGNULongLink:
		kind = "a GNU long link name"
	default:
		return ""
	}
	size, ok := octalField(h[124:136])
	if !ok || at+blockSize+(size+blockSize-1)&^(blockSize-1) != resume {
		return ""
	}
	return kind
}

// octalField reads a header's numeric field as tar writes it: octal
// digits between spaces or NULs. A field that holds anything else (or
// nothing, or a value past 2^40) does not read.
func octalField(f []byte) (int64, bool) {
	f = bytes.Trim(f, " \x00")
	var v int64
	for _, c := range f {
		if c < '0' || c > '7' || v > 1<<40 {
			return 0, false
		}
		v = v*8 + int64(c-'0')
	}
	return v, len(f) > 0
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checksumOK reports whether a 512-byte block's checksum field (octal, at
// bytes 148–155) matches the sum of its bytes with that field counted as
// spaces, unsigned or, as some old tars wrote it, signed.
func checksumOK(b []byte) bool {
	want, ok := octalField(b[148:156])
	if !ok {
		return false
	}
	var u, s int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		u += int64(c)
		s += int64(int8(c))
	}
	return want == u || want == s
}

// headerError says where Next failed: the entry's offset, the member
// before it, and in plain words when the archive is cut short or
// compressed.
func headerError(r io.ReaderAt, base, n, at int64, last string, err error) error {
	if last == "" {
		if c := compressedAs(r, base, n); c != "" {
			return fmt.Errorf("%s-compressed, not a plain tar: decompress it first (%w)", c, err)
		}
	}
	where := "the first entry"
	switch {
	case last != "" && at >= 0:
		where = fmt.Sprintf("the entry at offset %d, after member %s", at, last)
	case last != "":
		where = "the entry after member " + last
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the archive (%d bytes) ends inside %s: truncated (%w)", n, where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}
