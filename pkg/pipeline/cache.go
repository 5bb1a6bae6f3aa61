package pipeline

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/alexnet-repro/alexnet/shards"
)

// readerCache keeps shard Readers open between records, at most max of
// them unless more are in use at once. An open Reader costs a file
// descriptor and its index (8 bytes a record); opening one costs a few
// syscalls and an index read and checksum, too much to pay per record but
// cheap per shard. The shuffle buffer reads a handful of shards at a time,
// so least-recently-used eviction rarely closes a shard still in play.
type readerCache struct {
	paths []string
	infos []shards.ShardInfo // what meta.json says each shard is
	max   int

	mu    sync.Mutex
	ents  []cacheEntry
	open  int
	clock uint64
	// opens counts every open and peak is the most open at once: what a
	// test needs to see that the bound holds and eviction happened.
	opens, peak int
}

type cacheEntry struct {
	r    *shards.Reader
	refs int
	used uint64
}

func newReaderCache(paths []string, infos []shards.ShardInfo, max int) *readerCache {
	return &readerCache{paths: paths, infos: infos, max: max, ents: make([]cacheEntry, len(paths))}
}

// name is shard i's file name, as errors give it.
func (c *readerCache) name(i int) string { return filepath.Base(c.paths[i]) }

// acquire returns shard i's Reader, opening it if need be; release must
// follow. Opening happens under the lock: opens are rare, and a second
// worker wanting the same shard must wait for it anyway.
func (c *readerCache) acquire(i int) (*shards.Reader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	e := &c.ents[i]
	if e.r == nil {
		if c.open >= c.max {
			c.evict()
		}
		r, err := openShard(c.paths[i], c.name(i))
		if err != nil {
			return nil, err
		}
		if err := checkShard(r, c.infos[i]); err != nil {
			r.Close()
			return nil, &shards.RecordError{Shard: c.name(i), Index: -1, Offset: -1, Err: err}
		}
		e.r = r
		c.open++
		c.opens++
		c.peak = max(c.peak, c.open)
	}
	e.refs++
	e.used = c.clock
	return e.r, nil
}

// checkShard says how an opened shard differs from its meta.json entry.
// The record CRCs only say the bytes are as written: a shard from another
// ingest (other seed, size or settings), copied over this one's, passes
// them all. Its size and the whole-file CRC in its trailer, both already
// read, tell it apart at no cost. An entry without them (written by hand)
// is checked on its record count alone.
func checkShard(r *shards.Reader, info shards.ShardInfo) error {
	if r.Len() != info.Records {
		return fmt.Errorf("holds %d records, meta.json says %d", r.Len(), info.Records)
	}
	var bad []string
	if info.Bytes > 0 && r.Size() != info.Bytes {
		bad = append(bad, fmt.Sprintf("%d bytes, meta.json says %d", r.Size(), info.Bytes))
	}
	if got := fmt.Sprintf("%08x", r.FileCRC()); info.CRC32C != "" && got != info.CRC32C {
		bad = append(bad, fmt.Sprintf("file CRC %s, meta.json says %s", got, info.CRC32C))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("not the shard meta.json lists (%s): replaced, rewritten or damaged since; shardtool verify says which, and how to repair it", strings.Join(bad, "; "))
}

func (c *readerCache) release(i int) {
	c.mu.Lock()
	c.ents[i].refs--
	c.mu.Unlock()
}

// evict closes the least recently used Reader nobody holds, if any.
func (c *readerCache) evict() {
	victim := -1
	for i := range c.ents {
		e := &c.ents[i]
		if e.r != nil && e.refs == 0 && (victim < 0 || e.used < c.ents[victim].used) {
			victim = i
		}
	}
	if victim >= 0 {
		c.ents[victim].r.Close()
		c.ents[victim].r = nil
		c.open--
	}
}

// openCount is the number of Readers open now.
func (c *readerCache) openCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// close closes every Reader; callers must have released them all.
func (c *readerCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i := range c.ents {
		if r := c.ents[i].r; r != nil {
			errs = append(errs, r.Close())
			c.ents[i].r = nil
		}
	}
	c.open = 0
	return errors.Join(errs...)
}

// openShard opens the shard at path, an error naming it (as name) and no
// record: a shard that is missing or cannot be read is no record's fault.
func openShard(path, name string) (*shards.Reader, error) {
	r, err := shards.Open(path)
	if err != nil {
		var re *shards.RecordError
		if !errors.As(err, &re) {
			err = &shards.RecordError{Shard: name, Index: -1, Offset: -1, Err: err}
		}
		return nil, err
	}
	return r, nil
}

// CheckShards opens every shard of split listed in meta (read from dir)
// and checks it against its entry: there, whole (header, trailer, index),
// with the records, size and file CRC that meta.json gives. It reads no
// record, so it costs a few syscalls and an index read a shard. A run that
// must not start on shards it would fail on later (train's --overwrite
// removes the old run before the first step) calls it first; the pipeline
// checks each shard the same way when it opens it.
func CheckShards(dir string, meta *shards.Meta, split string) error {
	for _, sh := range meta.Splits[split].Shards {
		if size, ok := sh.LargerOnDisk(dir); ok {
			return &shards.RecordError{Shard: sh.File, Index: -1, Offset: -1,
				Err: fmt.Errorf("not the shard meta.json lists (%d bytes, meta.json says %d): replaced, rewritten or damaged since; shardtool verify says which, and how to repair it", size, sh.Bytes)}
		}
		r, err := openShard(filepath.Join(dir, sh.File), sh.File)
		if err != nil {
			return err
		}
		err = checkShard(r, sh)
		r.Close()
		if err != nil {
			return &shards.RecordError{Shard: sh.File, Index: -1, Offset: -1, Err: err}
		}
	}
	return nil
}
