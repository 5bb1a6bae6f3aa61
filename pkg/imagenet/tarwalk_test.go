package imagenet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// countingReaderAt counts the bytes read, to prove listing skips contents.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

func TestWalkTar(t *testing.T) {
	long := "n01440764/" + strings.Repeat("very_long_directory_name/", 6) + "n01440764_10026.JPEG" // > 100 bytes
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096)                                          // 64 KiB
	files := []tarFile{
		{name: "dir/", dir: true},
		{name: "dir/a.JPEG", data: []byte("alpha")},
		{name: "dir/link.JPEG", symlink: true},
		{name: "empty.JPEG"},
		{name: "block.JPEG", data: bytes.Repeat([]byte{7}, 512)},
		{name: "hard.JPEG", typ: tar.TypeLink, link: "./dir/a.JPEG"},
		{name: "big.JPEG", data: big},
		{name: "pipe.JPEG", typ: tar.TypeFifo},
		{name: "hard2.JPEG", typ: tar.TypeLink, link: "hard.JPEG"}, // a link to a link
		{name: "later.JPEG", typ: tar.TypeLink, link: "long.JPEG"},
		{name: "hard3.JPEG", typ: tar.TypeLink, link: "dir"},
		{name: "self.JPEG", typ: tar.TypeLink, link: "./self.JPEG"},
		{name: "dir/symself.JPEG", typ: tar.TypeSymlink, link: "symself.JPEG"},
		{name: "sym.JPEG", typ: tar.TypeSymlink, link: "dir/a.JPEG"},
		{name: "dir/sym2.JPEG", typ: tar.TypeSymlink, link: "../hard2.JPEG"}, // relative to its folder, to a link
		{name: "dir/up.JPEG", typ: tar.TypeSymlink, link: "../../a.JPEG"},
		{name: "abs.JPEG", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{name: "symdir.JPEG", typ: tar.TypeSymlink, link: "dir"},
		{name: "symlater.JPEG", typ: tar.TypeSymlink, link: "zz.JPEG"},
		{name: "zz.JPEG", data: []byte("later")},
		{name: long, data: []byte("long name")},
	}
	// What each entry must be: its data, or why it is not a file.
	want := map[string]struct {
		data []byte
		why  string
	}{
		"dir/":             {why: "a directory, not a file"},
		"dir/link.JPEG":    {why: "symbolic link to elsewhere.JPEG, which is not an earlier member of this archive"},
		"sym.JPEG":         {data: []byte("alpha")},
		"dir/sym2.JPEG":    {data: []byte("alpha")},
		"dir/up.JPEG":      {why: "symbolic link to ../../a.JPEG, outside the archive"},
		"abs.JPEG":         {why: "symbolic link to /etc/passwd, outside the archive"},
		"symdir.JPEG":      {why: "symbolic link to dir, which is not a file: a directory, not a file"},
		"symlater.JPEG":    {why: "symbolic link to zz.JPEG, which is not an earlier member of this archive"},
		"hard.JPEG":        {data: []byte("alpha")},
		"hard2.JPEG":       {data: []byte("alpha")},
		"pipe.JPEG":        {why: "a named pipe, not a file"},
		"later.JPEG":       {why: "hard link to long.JPEG, which is not in this archive"},
		"hard3.JPEG":       {why: "hard link to dir, which is not a file: a directory, not a file"},
		"self.JPEG":        {why: "hard link to itself"},
		"dir/symself.JPEG": {why: "symbolic link to itself"},
	}
	for _, f := range files {
		if f.typ == 0 && !f.dir && !f.symlink {
			want[f.name] = struct {
				data []byte
				why  string
			}{data: f.data}
		}
	}
	for _, tc := range []struct {
		format tar.Format
		long   bool // can the format hold the long name?
	}{
		{tar.FormatUSTAR, false},
		{tar.FormatPAX, true},
		{tar.FormatGNU, true},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			fs := files
			if !tc.long {
				fs = files[:len(files)-1]
			}
			b := tarBytes(t, tc.format, fs)
			// Put the tar at an offset inside a larger file, as a class tar
			// sits inside the training tar.
			file := append(append(bytes.Repeat([]byte("x"), 1000), b...), "trailing"...)
			r := &countingReaderAt{r: bytes.NewReader(file)}
			var got []tarMember
			err := walkTar(r, 1000, int64(len(b)), "t.tar", func(m tarMember) error {
				got = append(got, m)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(fs) {
				t.Fatalf("%d entries, want %d", len(got), len(fs))
			}
			for i, m := range got {
				if m.name != fs[i].name {
					t.Errorf("entry %d named %q, want %q", i, m.name, fs[i].name)
				}
				w := want[m.name]
				if m.file != (w.why == "") || m.why != w.why || m.dir != fs[i].dir {
					t.Errorf("%s: file %v, dir %v, why %q; want why %q", m.name, m.file, m.dir, m.why, w.why)
				}
				if m.file && !bytes.Equal(file[m.off:m.off+m.size], w.data) {
					t.Errorf("%s: bytes at offset %d differ", m.name, m.off)
				}
				if m.dup {
					t.Errorf("%s: a duplicate", m.name)
				}
				// Each entry's headers start where the tar reader finds it.
				if _, err := tar.NewReader(bytes.NewReader(b[m.at:])).Next(); err != nil {
					t.Errorf("%s: no entry at offset %d: %v", m.name, m.at, err)
				}
			}
			if r.n > int64(len(b))/2 {
				t.Errorf("listing read %d of %d bytes; it should read headers only", r.n, len(b))
			}
		})
	}
}

// A sparse member's stored bytes are not the file, so it is not one; the
// entries after it are still found, and the end still checked.
func TestWalkTarSparse(t *testing.T) {
	data := []byte("sparse data")
	gnu := tarBytes(t, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "s.JPEG", data: data}, {name: "b.JPEG", data: []byte("b")}})
	gnu = gnuSparse(t, gnu, "s.JPEG")
	pax := paxSparse(t, "s.JPEG", data)
	for _, tc := range []struct {
		name string
		b    []byte
		want []string // the names of the files
	}{
		{"GNU", gnu, []string{"a.JPEG", "b.JPEG"}},
		{"PAX", pax, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var files []string
			sparse := 0
			err := walkTar(bytes.NewReader(tc.b), 0, int64(len(tc.b)), "t.tar", func(m tarMember) error {
				switch {
				case m.file:
					files = append(files, m.name)
				case m.name == "s.JPEG" && m.why == "sparse member, not supported":
					sparse++
				default:
					t.Errorf("%s: %q", m.name, m.why)
				}
				return nil
			})
			if err != nil || sparse != 1 || !slices.Equal(files, tc.want) {
				t.Errorf("files %q, %d sparse, err %v; want %q and the sparse one", files, sparse, err, tc.want)
			}
			// Cut where the end blocks start: after the sparse member the
			// end is found by its zero blocks alone.
			cut := tc.b[:len(tc.b)-1024]
			err = walkTar(bytes.NewReader(cut), 0, int64(len(cut)), "t.tar", func(tarMember) error { return nil })
			if err == nil || !strings.Contains(err.Error(), "looks truncated") {
				t.Errorf("cut before the end blocks: err = %v", err)
			}
		})
	}
}

// A tar cut at a member boundary parses; only its missing end-of-archive
// blocks tell. Tars as GNU tar and Python write them, padded to a 10240-byte
// record, must still pass.
func TestWalkTarEnd(t *testing.T) {
	b := tarBytes(t, tar.FormatUSTAR, []tarFile{
		{name: "a.JPEG", data: bytes.Repeat([]byte{1}, 600)},
		{name: "d/", dir: true},
		{name: "b.JPEG", data: bytes.Repeat([]byte{2}, 1000)},
	})
	body := len(b) - 1024 // where the end blocks start
	record := append(bytes.Clone(b), make([]byte, 10240-len(b)%10240)...)
	empty := tarBytes(t, tar.FormatUSTAR, nil)
	// git archive starts with a global header: metadata, not an entry.
	var global bytes.Buffer
	tw := tar.NewWriter(&global)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": strings.Repeat("c", 600)}}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "a.JPEG", Mode: 0o644, Size: 1}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("a"))
	tw.Close()
	// Some writers give links a size; tar readers ignore it, as no data
	// follows.
	sizedLink := patchHeader(t, tarBytes(t, tar.FormatUSTAR, []tarFile{{name: "l.JPEG", symlink: true}, {name: "a.JPEG", data: []byte("a")}}), "l.JPEG", func(h []byte) {
		copy(h[124:136], "00000001000\x00")
	})
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" when it must pass
	}{
		{"as Go writes it", b, ""},
		{"padded to a record", record, ""},
		{"no members", empty, ""},
		{"a link with a size", sizedLink, ""},
		{"a global header", global.Bytes(), ""},
		{"no members, padded", make([]byte, 10240), ""},
		{"a lone zero block", b[:body+512], ""},
		{"cut before the end blocks", b[:body], "t.tar: ends without tar's end-of-archive blocks, after member b.JPEG: it looks truncated"},
		{"cut in the last padding", b[:body-1], "t.tar: ends without tar's end-of-archive blocks, after member b.JPEG: it looks truncated"},
		{"cut before a member", b[:512+1024+512], "t.tar: ends without tar's end-of-archive blocks, after member d/: it looks truncated"},
		{"cut before a directory", b[:512+1024], "after member a.JPEG: it looks truncated"},
		{"empty file", nil, "t.tar: empty (0 bytes), without even tar's end-of-archive blocks: it looks truncated"},
		{"cut in the end blocks", b[:body+100], "ends inside the entry at offset 3584, after member b.JPEG: truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			err := walkTar(bytes.NewReader(tc.in), 0, int64(len(tc.in)), "t.tar", func(m tarMember) error {
				n++
				if !m.file && !m.dir && m.why != "symbolic link to elsewhere.JPEG, which is not an earlier member of this archive" {
					t.Errorf("%s: %s", m.name, m.why)
				}
				if h, err := tar.NewReader(bytes.NewReader(tc.in[m.at:])).Next(); err != nil || h.Name != m.name {
					t.Errorf("%s: at offset %d, the tar reader finds %v, %v", m.name, m.at, h, err)
				}
				return nil
			})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (%d entries), want one containing %q", err, n, tc.want)
			}
		})
	}
}

func TestWalkTarErrors(t *testing.T) {
	b := tarBytes(t, tar.FormatUSTAR, []tarFile{
		{name: "a.JPEG", data: bytes.Repeat([]byte{1}, 600)},
		{name: "b.JPEG", data: bytes.Repeat([]byte{2}, 3000)},
	})
	corrupt := bytes.Clone(b)
	corrupt[1536+148] ^= 0xFF // the second header's checksum
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		// Cut inside the last member: Next does not notice, walkTar must.
		{"truncated last member", b[:512+1024+512+100], "t.tar:b.JPEG: 3000 bytes at offset 2048 run past the end"},
		{"truncated header", b[:512+1024+200], "t.tar: the archive (1736 bytes) ends inside the entry at offset 1536, after member a.JPEG: truncated"},
		{"truncated first header", b[:200], "t.tar: the archive (200 bytes) ends inside the first entry: truncated"},
		// A damaged header with nothing after it that parses.
		{"bad first checksum, one member", damageHeader(t, tarBytes(t, tar.FormatUSTAR, []tarFile{{name: "a.JPEG", data: []byte("a")}}), "a.JPEG"), "t.tar: the first entry: archive/tar: invalid tar header"},
		{"bad checksum, then cut", corrupt[:len(corrupt)-1024], "t.tar: the entry at offset 1536, after member a.JPEG: archive/tar: invalid tar header"},
		{"gzip", gz(b), "t.tar: gzip-compressed, not a plain tar: decompress it first"},
		{"gzip, short", gz(nil)[:10], "t.tar: gzip-compressed"},
		{"xz", []byte("\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46"), "t.tar: xz-compressed"},
		{"zstd", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, make([]byte, 600)...), "t.tar: zstd-compressed"},
		{"bzip2", append([]byte("BZh91AY&SY"), make([]byte, 600)...), "t.tar: bzip2-compressed"},
		{"not a tar", bytes.Repeat([]byte("x"), 1024), "t.tar: the first entry: archive/tar: invalid tar header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := walkTar(bytes.NewReader(tc.in), 0, int64(len(tc.in)), "t.tar", func(tarMember) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	stop := fmt.Errorf("stop")
	if err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(tarMember) error { return stop }); err != stop {
		t.Errorf("callback error %v not passed through", err)
	}
}

// TestWalkTarResync damages headers as a flipped bit would, and checks
// that the walk goes on at the next header that parses, passing on the
// stretch it skipped, as GNU tar does.
func TestWalkTarResync(t *testing.T) {
	files := []tarFile{
		{name: "a.JPEG", data: bytes.Repeat([]byte{1}, 600)},
		{name: "b.JPEG", data: bytes.Repeat([]byte{2}, 3000)},
		{name: "c.JPEG", data: bytes.Repeat([]byte{3}, 10)},
		{name: "d.JPEG", data: bytes.Repeat([]byte{4}, 512)},
	}
	clean := tarBytes(t, tar.FormatGNU, files)
	// Headers at 0, 1536, 5120, 6144; end blocks at 7168.
	type entry struct {
		name      string
		at        int64
		lost      bool
		resume    int64
		resumeEnd bool
	}
	ok := func(name string, at int64) entry { return entry{name: name, at: at} }
	for _, tc := range []struct {
		name    string
		damage  []string
		want    []entry
		wantErr string
	}{
		{"none", nil, []entry{ok("a.JPEG", 0), ok("b.JPEG", 1536), ok("c.JPEG", 5120), ok("d.JPEG", 6144)}, ""},
		{"middle", []string{"b.JPEG"}, []entry{ok("a.JPEG", 0), {at: 1536, lost: true, resume: 5120}, ok("c.JPEG", 5120), ok("d.JPEG", 6144)}, ""},
		{"two in a row", []string{"b.JPEG", "c.JPEG"}, []entry{ok("a.JPEG", 0), {at: 1536, lost: true, resume: 6144}, ok("d.JPEG", 6144)}, ""},
		{"two apart", []string{"a.JPEG", "c.JPEG"}, []entry{{at: 0, lost: true, resume: 1536}, ok("b.JPEG", 1536), {at: 5120, lost: true, resume: 6144}, ok("d.JPEG", 6144)}, ""},
		{"last", []string{"d.JPEG"}, []entry{ok("a.JPEG", 0), ok("b.JPEG", 1536), ok("c.JPEG", 5120), {at: 6144, lost: true, resume: 7168, resumeEnd: true}}, ""},
		{"all", []string{"a.JPEG", "b.JPEG", "c.JPEG", "d.JPEG"}, nil, "t.tar: the first entry: archive/tar: invalid tar header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := clean
			for _, name := range tc.damage {
				b = damageHeader(t, b, name)
			}
			var got []entry
			err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(m tarMember) error {
				got = append(got, entry{m.name, m.at, m.lost, m.resume, m.resumeEnd})
				if m.lost && !strings.Contains(m.why, "a damaged tar header at offset "+fmt.Sprint(m.at)) {
					t.Errorf("lost stretch's reason %q", m.why)
				}
				return nil
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("entries\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
	// A member's data holding a tar header (a tar stored in a tar) is
	// where the walk picks up: the checksum cannot tell. The training
	// tar's listing refuses a lost stretch for this reason.
	nested := tarBytes(t, tar.FormatGNU, []tarFile{{name: "x.JPEG", data: []byte("x")}})
	b := damageHeader(t, tarBytes(t, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "in.tar", data: nested}}), "in.tar")
	var names []string
	if err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(m tarMember) error {
		names = append(names, m.name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.JPEG", "", "x.JPEG"}; !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	// Zero blocks in a member's bytes, after its damaged header, are not
	// the end of the archive: the walk goes on to the member after them.
	zeros := damageHeader(t, tarBytes(t, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "z.JPEG", data: make([]byte, 2048)}, {name: "c.JPEG", data: []byte("c")}}), "z.JPEG")
	names = nil
	if err := walkTar(bytes.NewReader(zeros), 0, int64(len(zeros)), "t.tar", func(m tarMember) error {
		names = append(names, m.name)
		if m.lost && (m.resumeEnd || m.resume != 3584) {
			t.Errorf("lost stretch %d..%d (end %v), want up to c.JPEG's header at 3584", m.at, m.resume, m.resumeEnd)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.JPEG", "", "c.JPEG"}; !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	// The callback's error for a lost stretch ends the walk.
	stop := fmt.Errorf("stop")
	b = damageHeader(t, clean, "b.JPEG")
	if err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(m tarMember) error {
		if m.lost {
			return stop
		}
		return nil
	}); err != stop {
		t.Errorf("callback error %v not passed through", err)
	}
}

// TestWalkTarZeroedAndExtensions covers damage that is not a bad
// checksum: zeros over a header, which read as the end-of-archive mark; a
// second archive appended; a damaged extension header, which loses no
// member; a hard link into a lost stretch; and the cost of the search.
func TestWalkTarZeroedAndExtensions(t *testing.T) {
	files := []tarFile{
		{name: "a.JPEG", data: bytes.Repeat([]byte{1}, 600)},
		{name: "b.JPEG", data: bytes.Repeat([]byte{2}, 3000)},
		{name: "c.JPEG", data: bytes.Repeat([]byte{3}, 10)},
		{name: "d.JPEG", data: bytes.Repeat([]byte{4}, 512)},
	}
	clean := tarBytes(t, tar.FormatGNU, files) // headers at 0, 1536, 5120, 6144
	type entry struct {
		name string
		at   int64
		lost string // a substring of why, for a lost stretch
		ext  string
	}
	walk := func(t *testing.T, b []byte) ([]entry, []tarMember, error) {
		var got []entry
		var ms []tarMember
		err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(m tarMember) error {
			e := entry{name: m.name, at: m.at, ext: m.ext}
			if m.lost {
				e.lost = m.why
			}
			got = append(got, e)
			ms = append(ms, m)
			return nil
		})
		return got, ms, err
	}
	check := func(t *testing.T, got, want []entry) {
		t.Helper()
		ok := len(got) == len(want)
		for i := range want {
			if ok && (got[i].name != want[i].name || got[i].at != want[i].at || got[i].ext != want[i].ext || !strings.Contains(got[i].lost, want[i].lost) || (want[i].lost == "") != (got[i].lost == "")) {
				ok = false
			}
		}
		if !ok {
			t.Errorf("entries\n %+v\nwant\n %+v", got, want)
		}
	}

	t.Run("zeroed header", func(t *testing.T) {
		b := bytes.Clone(clean)
		clear(b[1536 : 1536+1024]) // b.JPEG's header and its first data block
		got, ms, err := walk(t, b)
		if err != nil {
			t.Fatal(err)
		}
		check(t, got, []entry{{name: "a.JPEG"}, {at: 1536, lost: "zero blocks where a tar header belongs at offset 1536, after member a.JPEG"}, {name: "c.JPEG", at: 5120}, {name: "d.JPEG", at: 6144}})
		if ms[1].resume != 5120 {
			t.Errorf("resumed at %d, want 5120", ms[1].resume)
		}
	})
	t.Run("second archive appended", func(t *testing.T) {
		second := tarBytes(t, tar.FormatGNU, []tarFile{{name: "e.JPEG", data: []byte("e")}})
		b := append(bytes.Clone(clean), second...)
		got, _, err := walk(t, b)
		if err != nil {
			t.Fatal(err)
		}
		// As GNU tar without -i, only the first archive is read; the
		// second is named, for the caller to warn of.
		check(t, got, []entry{{name: "a.JPEG"}, {name: "b.JPEG", at: 1536}, {name: "c.JPEG", at: 5120}, {name: "d.JPEG", at: 6144},
			{at: 7168, lost: fmt.Sprintf("another archive follows it at offset %d (appended", len(clean))}})
		if _, ms, _ := walk(t, b); !ms[4].appended {
			t.Error("the appended archive is not marked so")
		}
	})
	t.Run("padding after the end", func(t *testing.T) {
		b := append(bytes.Clone(clean), make([]byte, 9216)...) // GNU tar's 10 KiB record
		got, _, err := walk(t, b)
		if err != nil || len(got) != 4 {
			t.Errorf("entries %+v, err %v; want the 4 members", got, err)
		}
	})
	t.Run("junk after the end", func(t *testing.T) {
		b := append(bytes.Clone(clean), bytes.Repeat([]byte("junk"), 1000)...)
		got, _, err := walk(t, b)
		if err != nil || len(got) != 4 {
			t.Errorf("entries %+v, err %v; want the 4 members", got, err)
		}
	})
	t.Run("damaged PAX header", func(t *testing.T) {
		long := strings.Repeat("p", 120) + ".JPEG"
		b := tarBytes(t, tar.FormatPAX, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: long, data: []byte("long")}, {name: "c.JPEG", data: []byte("c")}})
		// The 'x' header of the long name is the block after a.JPEG's.
		if b[1024+156] != tar.TypeXHeader {
			t.Fatalf("no PAX header at 1024 (type %q)", b[1024+156])
		}
		b[1024] ^= 0x20
		got, _, err := walk(t, b)
		if err != nil {
			t.Fatal(err)
		}
		check(t, got, []entry{{name: "a.JPEG"}, {at: 1024, lost: "a damaged tar header at offset 1024", ext: "PAX records"}, {name: long[:100], at: 2048}, {name: "c.JPEG", at: 3072}})
	})
	t.Run("hard link into a lost stretch", func(t *testing.T) {
		b := damageHeader(t, tarBytes(t, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "b.JPEG", data: []byte("b")}, {name: "h.JPEG", typ: tar.TypeLink, link: "b.JPEG"}}), "b.JPEG")
		_, ms, err := walk(t, b)
		if err != nil {
			t.Fatal(err)
		}
		if h := ms[len(ms)-1]; h.file || !strings.Contains(h.why, "may have been in the stretch lost to damage at offset 1024") {
			t.Errorf("hard link %+v, want it named as perhaps in the lost stretch", h)
		}
	})
	t.Run("long run of zeros", func(t *testing.T) {
		// A damaged header, then 4 MiB of zeros in its member's bytes:
		// the zeros are read about once, not once for each block.
		b := damageHeader(t, tarBytes(t, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "z.JPEG", data: make([]byte, 4<<20)}, {name: "c.JPEG", data: []byte("c")}}), "z.JPEG")
		cr := &countingReaderAt{r: bytes.NewReader(b)}
		var names []string
		if err := walkTar(cr, 0, int64(len(b)), "t.tar", func(m tarMember) error {
			names = append(names, m.name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []string{"a.JPEG", "", "c.JPEG"}; !slices.Equal(names, want) {
			t.Errorf("entries %q, want %q", names, want)
		}
		if cr.n > 3*int64(len(b)) {
			t.Errorf("read %d bytes of a %d-byte archive", cr.n, len(b))
		}
	})
	t.Run("a gigabyte of zeros after the end", func(t *testing.T) {
		// Zeros for the search's limit are the end: the rest is not read.
		cr := &countingReaderAt{r: zeroTail{clean}}
		var names []string
		if err := walkTar(cr, 0, 1<<30, "t.tar", func(m tarMember) error {
			names = append(names, m.name)
			return nil
		}); err != nil || len(names) != 4 {
			t.Fatalf("entries %q, err %v", names, err)
		}
		if cr.n > resyncLimit+1<<20 {
			t.Errorf("read %d bytes, more than the search's limit of %d", cr.n, resyncLimit)
		}
	})
	t.Run("not a tar, large", func(t *testing.T) {
		// A 1 GiB file of text named .tar fails after the search's limit,
		// not after reading all of it.
		cr := &countingReaderAt{r: textReaderAt{}}
		err := walkTar(cr, 0, 1<<30, "t.tar", func(tarMember) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "the first entry") {
			t.Errorf("err = %v, want the first entry's", err)
		}
		if cr.n > resyncLimit+1<<20 {
			t.Errorf("read %d bytes, more than the search's limit of %d", cr.n, resyncLimit)
		}
	})
}

// zeroTail reads as its bytes followed by zeros.
type zeroTail struct{ b []byte }

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(z.b)) {
		copy(p, z.b[off:])
	}
	return len(p), nil
}

// textReaderAt reads as an endless file of "x".
type textReaderAt struct{}

func (textReaderAt) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestChecksumOK(t *testing.T) {
	b := tarBytes(t, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}})
	h := b[:512]
	if !checksumOK(h) {
		t.Fatal("a header written by archive/tar fails")
	}
	for _, tc := range []struct {
		name  string
		patch func(h []byte)
	}{
		{"flipped bit", func(h []byte) { h[10] ^= 1 }},
		{"empty field", func(h []byte) { copy(h[148:156], "        ") }},
		{"not octal", func(h []byte) { copy(h[148:156], "00009\x00  ") }},
		{"zero block", func(h []byte) { clear(h) }},
	} {
		c := bytes.Clone(h)
		tc.patch(c)
		if checksumOK(c) {
			t.Errorf("%s: passes", tc.name)
		}
	}
	// The signed sum some old tars wrote: a byte ≥ 0x80 counts negative.
	c := bytes.Clone(h)
	c[0] = 0xE9
	var s int64
	for i, x := range c {
		if i >= 148 && i < 156 {
			x = ' '
		}
		s += int64(int8(x))
	}
	copy(c[148:156], fmt.Sprintf("%06o\x00 ", s))
	if !checksumOK(c) {
		t.Error("a signed checksum fails")
	}
}

// Two entries of one name: both offsets are given, so that the error can
// tell them apart.
func TestWalkTarDuplicates(t *testing.T) {
	b := tarBytes(t, tar.FormatUSTAR, []tarFile{
		{name: "a.JPEG", data: []byte("1")},
		{name: "b.JPEG", data: []byte("2")},
		{name: "./a.JPEG", data: []byte("3")},
	})
	var got []tarMember
	if err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(m tarMember) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got[0].dup || got[1].dup || !got[2].dup || got[2].dupAt != 0 || got[2].at != 2048 {
		t.Errorf("entries %+v; want the third a duplicate of the first, at 2048 and 0", got)
	}
}

func FuzzTarWalk(f *testing.F) {
	f.Add(tarBytes(f, tar.FormatUSTAR, []tarFile{{name: "a.JPEG", data: []byte("x")}, {name: "d/", dir: true}}))
	f.Add(tarBytes(f, tar.FormatPAX, []tarFile{{name: strings.Repeat("p", 150) + ".JPEG", data: []byte("pax")}}))
	f.Add(tarBytes(f, tar.FormatGNU, []tarFile{{name: strings.Repeat("g", 150) + ".JPEG", data: bytes.Repeat([]byte("g"), 700)}}))
	f.Add(newFixture().trainTar(f, tar.FormatUSTAR)[:3000])
	f.Add(gnuSparse(f, tarBytes(f, tar.FormatGNU, []tarFile{{name: "s.JPEG", data: []byte("sparse")}, {name: "h.JPEG", typ: tar.TypeLink, link: "s.JPEG"}}), "s.JPEG"))
	f.Add(tarBytes(f, tar.FormatPAX, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "./h.JPEG", typ: tar.TypeLink, link: "a.JPEG"}, {name: "a.JPEG", data: []byte("again")}}))
	f.Add(damageHeader(f, tarBytes(f, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "b.JPEG", data: []byte("b")}, {name: "c.JPEG", data: []byte("c")}}), "b.JPEG"))
	zeroed := tarBytes(f, tar.FormatGNU, []tarFile{{name: "a.JPEG", data: []byte("a")}, {name: "b.JPEG", data: bytes.Repeat([]byte("b"), 1500)}, {name: "c.JPEG", data: []byte("c")}})
	clear(zeroed[1024:2048])
	f.Add(zeroed)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Nested as the training tar is: every member is walked again.
		n := int64(len(b))
		_ = walkTar(bytes.NewReader(b), 0, n, "f.tar", func(m tarMember) error {
			if m.at < -1 || m.at+blockSize > n {
				t.Fatalf("member %q at offset %d, which holds no header of the %d-byte archive", m.name, m.at, n)
			}
			if m.lost && (m.at < 0 || m.resume <= m.at || m.resume+blockSize > n || m.resume%blockSize != 0) {
				t.Fatalf("lost stretch %d..%d in the %d-byte archive", m.at, m.resume, n)
			}
			if !m.file {
				return nil
			}
			if m.off < 0 || m.size < 0 || m.off+m.size > n {
				t.Fatalf("member %q at %d+%d outside the %d-byte archive", m.name, m.off, m.size, n)
			}
			err := walkTar(bytes.NewReader(b), m.off, m.size, "f.tar:"+m.name, func(im tarMember) error {
				if !im.file {
					return nil
				}
				if im.off < m.off || im.off+im.size > m.off+m.size {
					t.Fatalf("inner member %q at %d+%d outside its tar at %d+%d", im.name, im.off, im.size, m.off, m.size)
				}
				return nil
			})
			_ = err
			return nil
		})
	})
}

// BenchmarkWalkTar lists a training-style tar (class tars of many small
// members) held in memory, so it measures the header parsing alone.
func BenchmarkWalkTar(b *testing.B) {
	const classes, perClass = 10, 1000
	var outer []tarFile
	for c := range classes {
		var inner []tarFile
		for i := range perClass {
			inner = append(inner, tarFile{name: fmt.Sprintf("n%08d_%d.JPEG", c, i), data: make([]byte, 1000+i)})
		}
		outer = append(outer, tarFile{name: fmt.Sprintf("n%08d.tar", c), data: tarBytes(b, tar.FormatUSTAR, inner)})
	}
	data := tarBytes(b, tar.FormatUSTAR, outer)
	r := bytes.NewReader(data)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		err := walkTar(r, 0, int64(len(data)), "bench.tar", func(m tarMember) error {
			err := walkTar(r, m.off, m.size, "bench.tar:"+m.name, func(tarMember) error { n++; return nil })
			return err
		})
		if err != nil || n != classes*perClass {
			b.Fatalf("%d members, err %v", n, err)
		}
	}
	b.ReportMetric(float64(classes*perClass*b.N)/b.Elapsed().Seconds(), "members/s")
}
