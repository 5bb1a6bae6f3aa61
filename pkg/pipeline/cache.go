package pipeline

import (
	"errors"
	"fmt"
	"path/filepath"
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
	paths  []string
	counts []int // records each shard must hold, from meta.json
	max    int

	mu    sync.Mutex
	ents  []cacheEntry
	open  int
	clock uint64
}

type cacheEntry struct {
	r    *shards.Reader
	refs int
	used uint64
}

func newReaderCache(paths []string, counts []int, max int) *readerCache {
	return &readerCache{paths: paths, counts: counts, max: max, ents: make([]cacheEntry, len(paths))}
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
		r, err := shards.Open(c.paths[i])
		if err != nil {
			return nil, err
		}
		if r.Len() != c.counts[i] {
			r.Close()
			return nil, &shards.RecordError{Shard: c.name(i), Index: -1, Offset: -1,
				Err: fmt.Errorf("holds %d records, meta.json says %d", r.Len(), c.counts[i])}
		}
		e.r = r
		c.open++
	}
	e.refs++
	e.used = c.clock
	return e.r, nil
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
