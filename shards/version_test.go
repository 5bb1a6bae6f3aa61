package shards

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRecords writes a shard of records whose pixels all equal fill, so
// that two shards of different fills have records of the same lengths.
func writeRecords(t *testing.T, path string, fill byte) ShardInfo {
	t.Helper()
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		px := make([]byte, 4*4*3)
		for j := range px {
			px[j] = fill + byte(j)
		}
		if err := w.Append(&Record{ID: uint64(i), Label: int32(i), W: 4, H: 4, Channels: 3, Name: fmt.Sprintf("r%d", i), Codec: CodecZstd, Payload: px}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// asVersion1 rewrites a shard as format version 1 wrote it: the header's
// version 1, and the whole-file CRC over every byte, records' CRCs included.
func asVersion1(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[8:], 1)
	sum := crc32.Checksum(b[:len(b)-12], castagnoli)
	binary.LittleEndian.PutUint32(b[len(b)-12:], sum)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sum
}

// The whole-file CRC must depend on what the records hold: version 1's did
// not (a CRC-32C run through a checksum and then that checksum cancels it),
// so a shard from another ingest with records of the same lengths matched
// meta.json's entry for this one.
func TestFileCRCCoversRecords(t *testing.T) {
	dir := t.TempDir()
	a := writeRecords(t, filepath.Join(dir, "a.shard"), 10)
	b := writeRecords(t, filepath.Join(dir, "b.shard"), 20)
	if a.Bytes != b.Bytes {
		t.Fatalf("the fixture's shards differ in size: %d and %d", a.Bytes, b.Bytes)
	}
	if a.CRC32C == b.CRC32C {
		t.Fatalf("shards of other contents share the file CRC %s", a.CRC32C)
	}
	// The reason for version 2: under version 1's rule they would share it.
	if va, vb := asVersion1(t, filepath.Join(dir, "a.shard")), asVersion1(t, filepath.Join(dir, "b.shard")); va != vb {
		t.Fatalf("version 1's rule gave %08x and %08x; the residue property says they are equal", va, vb)
	}
}

// Shards of version 1, which users' ingests hold, still read and verify,
// each version's file CRC checked by its own rule; a version beyond this
// build's is refused by name.
func TestReadsVersion1(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v1.shard")
	writeRecords(t, p, 7)
	asVersion1(t, p)
	if res := Verify(p, false); len(res.Damage) != 0 || res.Records != 3 {
		t.Fatalf("version 1 shard: %d records, damage %v", res.Records, res.Damage)
	}
	r, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	// A version 1 header over version 2's CRC rule is damage.
	q := filepath.Join(dir, "mixed.shard")
	writeRecords(t, q, 7)
	b, _ := os.ReadFile(q)
	binary.LittleEndian.PutUint16(b[8:], 1)
	os.WriteFile(q, b, 0o644)
	if res := Verify(q, false); len(res.Damage) == 0 || !strings.Contains(res.Damage[0].Error(), "file") {
		t.Fatalf("version 1 header, version 2 file CRC: %v", res.Damage)
	}

	binary.LittleEndian.PutUint16(b[8:], Version+1)
	os.WriteFile(q, b, 0o644)
	if _, err := Open(q); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("format version %d, this build reads 1 to %d", Version+1, Version)) {
		t.Fatalf("a newer version: %v", err)
	}
}
