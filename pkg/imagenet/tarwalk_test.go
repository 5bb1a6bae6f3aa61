package imagenet

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
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
		{name: "big.JPEG", data: big},
		{name: long, data: []byte("long name")},
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
			skipped, err := walkTar(r, 1000, int64(len(b)), "t.tar", func(m tarMember) error {
				got = append(got, m)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if skipped != 2 {
				t.Errorf("skipped %d entries, want 2 (the directory and the symlink)", skipped)
			}
			var want []tarFile
			for _, f := range fs {
				if !f.dir && !f.symlink {
					want = append(want, f)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d members, want %d", len(got), len(want))
			}
			for i, m := range got {
				if m.name != want[i].name {
					t.Errorf("member %d named %q, want %q", i, m.name, want[i].name)
				}
				if data := file[m.off : m.off+m.size]; !bytes.Equal(data, want[i].data) {
					t.Errorf("%s: bytes at offset %d differ", m.name, m.off)
				}
			}
			if r.n > int64(len(b))/2 {
				t.Errorf("listing read %d of %d bytes; it should read headers only", r.n, len(b))
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
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		// Cut inside the last member: Next does not notice, walkTar must.
		{"truncated last member", b[:512+1024+512+100], "t.tar:b.JPEG: 3000 bytes at offset 2048 run past the end"},
		{"truncated header", b[:512+1024+200], "t.tar: unexpected EOF"},
		{"bad checksum", corrupt, "t.tar: archive/tar: invalid tar header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := walkTar(bytes.NewReader(tc.in), 0, int64(len(tc.in)), "t.tar", func(tarMember) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	stop := fmt.Errorf("stop")
	if _, err := walkTar(bytes.NewReader(b), 0, int64(len(b)), "t.tar", func(tarMember) error { return stop }); err != stop {
		t.Errorf("callback error %v not passed through", err)
	}
}

func FuzzTarWalk(f *testing.F) {
	f.Add(tarBytes(f, tar.FormatUSTAR, []tarFile{{name: "a.JPEG", data: []byte("x")}, {name: "d/", dir: true}}))
	f.Add(tarBytes(f, tar.FormatPAX, []tarFile{{name: strings.Repeat("p", 150) + ".JPEG", data: []byte("pax")}}))
	f.Add(tarBytes(f, tar.FormatGNU, []tarFile{{name: strings.Repeat("g", 150) + ".JPEG", data: bytes.Repeat([]byte("g"), 700)}}))
	f.Add(newFixture().trainTar(f, tar.FormatUSTAR)[:3000])
	f.Fuzz(func(t *testing.T, b []byte) {
		// Nested as the training tar is: every member is walked again.
		n := int64(len(b))
		_, _ = walkTar(bytes.NewReader(b), 0, n, "f.tar", func(m tarMember) error {
			if m.off < 0 || m.size < 0 || m.off+m.size > n {
				t.Fatalf("member %q at %d+%d outside the %d-byte archive", m.name, m.off, m.size, n)
			}
			_, err := walkTar(bytes.NewReader(b), m.off, m.size, "f.tar:"+m.name, func(im tarMember) error {
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
		_, err := walkTar(r, 0, int64(len(data)), "bench.tar", func(m tarMember) error {
			_, err := walkTar(r, m.off, m.size, "bench.tar:"+m.name, func(tarMember) error { n++; return nil })
			return err
		})
		if err != nil || n != classes*perClass {
			b.Fatalf("%d members, err %v", n, err)
		}
	}
	b.ReportMetric(float64(classes*perClass*b.N)/b.Elapsed().Seconds(), "members/s")
}
