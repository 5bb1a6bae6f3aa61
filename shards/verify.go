package shards

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// VerifyResult is what Verify found in one shard.
type VerifyResult struct {
	Shard   string
	Records int     // records that passed every check
	Damage  []error // each names the shard and, where it can, the record index
}

// Verify re-reads every byte of a shard independently of the code path that
// training uses: a sequential pass checks each record's CRC, the index and
// the whole-file CRC. When a record's framing is broken the pass cannot go
// on, so the index (if it is intact) is used to check the remaining records
// one by one and name each damaged one. With decode, every payload is also
// decompressed to its declared size.
func Verify(path string, decode bool) VerifyResult {
	return VerifyWith(path, decode, nil)
}

// VerifyWith is Verify with want run on every record whose bytes are intact
// (Meta.CheckRecord is meant for it): what it returns is that record's
// damage, and such a record is not decoded, since its header cannot be
// trusted to size the decode.
func VerifyWith(path string, decode bool, want func(*Record) error) VerifyResult {
	name := filepath.Base(path)
	res := VerifyResult{Shard: name}
	f, _, err := openFile(path)
	if err != nil {
		var re *RecordError
		if !errors.As(err, &re) {
			err = &RecordError{Shard: name, Index: -1, Offset: -1, Err: err}
		}
		res.Damage = append(res.Damage, err)
		return res
	}
	defer f.Close()
	var dec *Decoder
	var pix []byte
	if decode {
		dec, _ = NewDecoder()
		defer dec.Close()
	}
	check := func(i int, rec *Record) bool {
		if want != nil {
			if err := want(rec); err != nil {
				res.Damage = append(res.Damage, &RecordError{Shard: name, Index: i, Offset: -1, Err: err})
				return false
			}
		}
		if dec == nil {
			return true
		}
		n := rec.W * rec.H * 3
		if cap(pix) < n {
			pix = make([]byte, n)
		}
		if err := dec.Decode(pix[:n], rec.Codec, rec.Payload, rec.W, rec.H); err != nil {
			res.Damage = append(res.Damage, &RecordError{Shard: name, Index: i, Offset: -1, Err: err})
			return false
		}
		return true
	}
	sc := NewScanner(name, f)
	seen, badRecords := 0, 0
	var final error
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			return res
		}
		if errors.Is(err, errFileChecksum) && badRecords > 0 {
			// The records named already changed the file's bytes: the
			// whole-file CRC failing with them is the same fault.
			return res
		}
		if err != nil {
			res.Damage = append(res.Damage, err)
			var re *RecordError
			if errors.As(err, &re) && errors.Is(err, ErrChecksum) && re.Index >= 0 {
				seen++
				badRecords++
				// The damage may be in the record's length, and then
				// the next record does not start where the pass would
				// look: an intact index says where each one starts.
				if r, err := NewReader(name, f, fileSize(f)); err == nil {
					indexPass(&res, r, seen, check)
					return res
				}
				continue // no index to go by: assume the framing held
			}
			final = err
			break
		}
		if check(seen, rec) {
			res.Records++
		}
		seen++
	}
	// Framing broke at record `seen` or in the trailer: fall back to the index.
	r, err := NewReader(name, f, fileSize(f))
	if err != nil {
		// A fault in the file's own framing (bad magic, bytes after the
		// trailer) that the pass already named stops the index too; naming
		// it again reads as a second fault.
		// So does a file that ends inside the records: the missing
		// trailer is the same cut.
		var re *RecordError
		fileLevel := errors.As(final, &re) && re.Index < 0
		// A damaged end marker is where the pass looked for a record's
		// length: the index's check names that one fault better, so it
		// is said once, in its words.
		var me *markerError
		if errors.As(err, &me) && re != nil && re.Index >= 0 && re.Offset == me.offset {
			res.Damage[len(res.Damage)-1] = err
			return res
		}
		if !fileLevel && !errors.Is(final, io.ErrUnexpectedEOF) {
			res.Damage = append(res.Damage, err)
		}
		return res
	}
	// The file's end is intact, so a record that ran past it was framed by
	// a damaged length field, not cut short: "truncated" would send the
	// user looking for a short copy.
	var re *RecordError
	if errors.Is(final, io.ErrUnexpectedEOF) && errors.As(final, &re) && re.Index >= 0 && re.Offset >= 0 {
		var lb [4]byte
		if _, err := f.ReadAt(lb[:], re.Offset); err == nil {
			marker := int64(r.t.indexOffset) - 4
			res.Damage[len(res.Damage)-1] = &RecordError{Shard: name, Index: re.Index, Offset: re.Offset,
				Err: fmt.Errorf("%w: record length %d runs past the end of the records (their end marker is at offset %d, and the file's end is intact): the length field is damaged",
					ErrFormat, binary.LittleEndian.Uint32(lb[:]), marker)}
		}
	}
	indexPass(&res, r, seen+1, check)
	return res
}

// indexPass checks records from..r.Len()-1, each read at the offset the
// index gives.
func indexPass(res *VerifyResult, r *Reader, from int, check func(int, *Record) bool) {
	var rec Record
	var buf []byte
	var err error
	for i := from; i < r.Len(); i++ {
		if buf, err = r.ReadRecord(i, &rec, buf); err != nil {
			res.Damage = append(res.Damage, err)
			continue
		}
		if check(i, &rec) {
			res.Records++
		}
	}
}

func fileSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}
