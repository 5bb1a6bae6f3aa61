// Package shards owns the shard file format: records of 8-bit RGB images,
// each with its label, name, codec, compressed pixels and CRC-32C, followed
// by an offset index for random access and a whole-file checksum. FORMAT.md
// beside this file specifies it byte by byte.
//
// A Writer appends records and, on Close, writes the index and trailer to a
// temporary file, fsyncs it and renames it into place, so a shard either
// exists complete or not at all. A Reader opens a shard for random access
// (ReadAt over the index); Scanner reads one sequentially, checking every
// checksum as it goes. Both name the shard and record index in every error.
//
// Concurrency: a Writer, a Scanner and an Encoder/Decoder belong to one
// goroutine. A Reader's ReadRecord is safe for concurrent use, since it only
// issues ReadAt calls.
package shards
