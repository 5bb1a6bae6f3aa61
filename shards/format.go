package shards

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Version is the shard format version written in every header; readers
// take MinVersion to Version. Version 2 leaves each record's CRC field out
// of the whole-file CRC: fed through it, as version 1 does, a CRC-32C
// followed by its own checksum cancels its bytes (the residue property),
// so version 1's file CRC does not depend on what the records hold, only
// on their lengths, and cannot tell two shards of equal lengths apart.
const (
	Version    = 2
	MinVersion = 1
)

const (
	headerSize  = 16
	trailerSize = 32
	// recordFixed is the fixed part of a record body before the name.
	recordFixed = 1 + 1 + 2 + 2 + 2 + 4 + 8
	// endOfRecords stands where the next record's length would, so a
	// sequential reader knows the index follows.
	endOfRecords = 0xFFFFFFFF
	// maxBody bounds a record body (a 16384² RGB image is 805 MB raw):
	// a corrupt length must not make a reader allocate gigabytes.
	maxBody = 1 << 30
	// MaxNameLen bounds a record's name.
	MaxNameLen = 4096
)

var (
	headerMagic  = [8]byte{'A', 'L', 'X', 'S', 'H', 'A', 'R', 'D'}
	trailerMagic = [8]byte{'A', 'L', 'X', 'S', 'E', 'N', 'D', '1'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// ErrChecksum marks data whose CRC-32C does not match the stored one.
var ErrChecksum = errors.New("checksum mismatch")

// ErrFormat marks bytes that are not a well-formed shard.
var ErrFormat = errors.New("malformed shard")

// Record is one image. Pixels holds the codec's compressed bytes; Decoder
// turns them into W×H×3 interleaved RGB.
type Record struct {
	ID       uint64 // position of the image in its split's canonical (sorted-name) order
	Label    int32  // class index, -1 when unknown
	Name     string // the source file's base name (class/base where a split's base names repeat across classes)
	Codec    Codec
	W, H     int
	Channels int
	Payload  []byte
}

// RecordError names the shard and record index that a problem concerns.
type RecordError struct {
	Shard  string
	Index  int   // record index within the shard, -1 for file-level problems
	Offset int64 // byte offset, -1 when unknown
	Err    error
}

func (e *RecordError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("shard %s: %v", e.Shard, e.Err)
	}
	if e.Offset >= 0 {
		return fmt.Sprintf("shard %s record %d (offset %d): %v", e.Shard, e.Index, e.Offset, e.Err)
	}
	return fmt.Sprintf("shard %s record %d: %v", e.Shard, e.Index, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendBody encodes a record body (without length prefix or CRC).
func appendBody(dst []byte, r *Record) []byte {
	var fixed [recordFixed]byte
	fixed[0] = byte(r.Codec)
	fixed[1] = byte(r.Channels)
	binary.LittleEndian.PutUint16(fixed[2:], uint16(r.W))
	binary.LittleEndian.PutUint16(fixed[4:], uint16(r.H))
	binary.LittleEndian.PutUint16(fixed[6:], uint16(len(r.Name)))
	binary.LittleEndian.PutUint32(fixed[8:], uint32(r.Label))
	binary.LittleEndian.PutUint64(fixed[12:], r.ID)
	dst = append(dst, fixed[:]...)
	dst = append(dst, r.Name...)
	return append(dst, r.Payload...)
}

// parseBody decodes a record body. Payload aliases body.
func parseBody(body []byte, r *Record) error {
	if len(body) < recordFixed {
		return fmt.Errorf("%w: record body of %d bytes is shorter than its %d-byte header", ErrFormat, len(body), recordFixed)
	}
	r.Codec = Codec(body[0])
	r.Channels = int(body[1])
	r.W = int(binary.LittleEndian.Uint16(body[2:]))
	r.H = int(binary.LittleEndian.Uint16(body[4:]))
	nameLen := int(binary.LittleEndian.Uint16(body[6:]))
	r.Label = int32(binary.LittleEndian.Uint32(body[8:]))
	r.ID = binary.LittleEndian.Uint64(body[12:])
	if nameLen > MaxNameLen || recordFixed+nameLen > len(body) {
		return fmt.Errorf("%w: name length %d does not fit a %d-byte record", ErrFormat, nameLen, len(body))
	}
	if r.Channels != 3 {
		return fmt.Errorf("%w: %d channels (only RGB is defined)", ErrFormat, r.Channels)
	}
	if r.W == 0 || r.H == 0 {
		return fmt.Errorf("%w: empty %d×%d image", ErrFormat, r.W, r.H)
	}
	r.Name = string(body[recordFixed : recordFixed+nameLen])
	r.Payload = body[recordFixed+nameLen:]
	return nil
}

type trailer struct {
	indexOffset uint64
	count       uint64
	indexCRC    uint32
	fileCRC     uint32
}

func (t trailer) append(dst []byte) []byte {
	var b [trailerSize]byte
	binary.LittleEndian.PutUint64(b[0:], t.indexOffset)
	binary.LittleEndian.PutUint64(b[8:], t.count)
	binary.LittleEndian.PutUint32(b[16:], t.indexCRC)
	binary.LittleEndian.PutUint32(b[20:], t.fileCRC)
	copy(b[24:], trailerMagic[:])
	return append(dst, b[:]...)
}

func parseTrailer(b []byte) (trailer, error) {
	if len(b) != trailerSize || [8]byte(b[24:32]) != trailerMagic {
		return trailer{}, fmt.Errorf("%w: no trailer (incomplete or not a shard)", ErrFormat)
	}
	return trailer{
		indexOffset: binary.LittleEndian.Uint64(b[0:]),
		count:       binary.LittleEndian.Uint64(b[8:]),
		indexCRC:    binary.LittleEndian.Uint32(b[16:]),
		fileCRC:     binary.LittleEndian.Uint32(b[20:]),
	}, nil
}

func appendHeader(dst []byte) []byte {
	var b [headerSize]byte
	copy(b[:], headerMagic[:])
	binary.LittleEndian.PutUint16(b[8:], Version)
	return append(dst, b[:]...)
}

// checkHeader returns the version a header gives, or why it is not one
// this build reads.
func checkHeader(b []byte) (int, error) {
	if len(b) < headerSize || [8]byte(b[:8]) != headerMagic {
		return 0, fmt.Errorf("%w: bad magic (not a shard file)", ErrFormat)
	}
	v := int(binary.LittleEndian.Uint16(b[8:]))
	if v < MinVersion || v > Version {
		return 0, fmt.Errorf("%w: format version %d, this build reads %d to %d", ErrFormat, v, MinVersion, Version)
	}
	return v, nil
}
