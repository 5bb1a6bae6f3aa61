// Package pipeline owns the way from a split's shards to batches of
// augmented crops: the order of every epoch, reading, decompression,
// cropping and lighting, batching into caller-provided memory, in-order
// delivery, backpressure, cancellation, per-stage metrics, resumable
// positions and the rank/world split.
//
// # Stages
//
//	meta.json counts ─► Order: epoch e's (shard, record) sequence, this rank's share
//	                      │
//	free slots ────────► plan ×1     per batch: take a free slot (blocks: backpressure),
//	    ▲                 │          queue the slot for delivery, queue its images
//	    │                 ▼ tasks    chan, Batch deep
//	    │               read ×R      shard Reader cache; ReadAt + CRC into a pooled buffer
//	    │                 ▼ readq    chan, ReadAhead deep
//	    │               decode ×D    entropy decode + unfilter; draw; crop/flip into the
//	    │                 │          slot at the image's index; lighting offset
//	    │                 ▼          the worker finishing a slot's last image signals it
//	Release ◄────────── Next         the consumer: slots in batch order, each once complete
//
// The plan goroutine fixes every image's place before any worker sees it,
// and a record's augmentation depends only on (seed, epoch, record ID)
// through augment.RecordSeed. So the batches — contents and order — do not
// depend on the number of workers or on scheduling, and a run started at
// any Position delivers exactly the batches an uninterrupted run would
// have delivered from there: no state carries from batch to batch.
//
// # Epoch order
//
// Order computes an epoch from the shards' record counts: a fresh
// permutation of the shards per epoch, then a simulated shuffle buffer
// over the resulting (shard, record) stream. The buffer holds 8-byte Refs,
// not pixels, so it costs no image memory; its size bounds how many shards
// are being read at once. ShuffleQuality measures the result against a
// global shuffle. Validation modes use the canonical order (shards as
// meta.json lists them, records as stored), which ingest writes in sorted
// name order, so IDs come out ascending.
//
// Each rank takes a contiguous share of every epoch's sequence (Share). In
// Train mode shares are equal and the last N mod World records of the
// sequence, different ones each epoch, are left out; in validation modes
// the shares cover every record (the first N mod World ranks get one more).
// A rank's last short batch is dropped in Train mode and kept otherwise,
// unless Options.Partial says otherwise.
//
// # Ownership and concurrency
//
// New starts 1 + Readers + Decoders goroutines; they all end when the
// context is cancelled, when any of them fails, or at Close, which waits
// for them. Next and Release belong to the consumer; Metrics may be called
// from anywhere. The caller owns the slots' memory (pinned memory for the
// GPU, or NewSlot's); the pipeline writes a slot only between taking it
// from the free pool and delivering it, and the consumer owns it from Next
// until Release (so a consumer that holds every slot and calls Next again
// waits for a Release that only it could make). Every other buffer belongs to one goroutine: each decode
// worker keeps its own shards.Decoder and image buffer, and record buffers
// cycle through a fixed pool between readers and decoders, so a record
// costs no allocation in steady state beyond the name string that
// shards.ReadRecord makes.
//
// # Errors
//
// A record that fails its CRC, does not decode, or carries an impossible
// label, ID or size stops the pipeline: its slot is never completed, so
// the batch holding it is never delivered, and Next returns the error,
// which wraps a *shards.RecordError naming the shard and record and says
// which epoch, batch and image it was for.
//
// # Memory
//
// Bounded, whatever the speed of the consumer, by:
//   - the slots: len(Slots) × Batch × Views × (Crop²×3 + 32) bytes, the
//     caller's (4 × 19.3 MB by default at 128 × 224²);
//   - record buffers: (Readers + ReadAhead + Decoders) × the largest
//     record (about 92 KB at 256 px with grad-huff, 110 KB with grad-zstd);
//   - per decode worker: one residual plane buffer (W×H×3), two decoded
//     rows, and the Huffman or zstd decoder's state; a whole decoded image
//     (W×H×3 more) only in the ten-crop mode and for zstd-codec records,
//     which decode whole;
//   - the epoch plan: 8 bytes a record (10 MB for ImageNet's train split),
//     and while it is computed the shuffle buffer, 8 bytes an entry;
//   - open shards: up to MaxOpenShards file descriptors and indexes (8
//     bytes a record).
//
// Queues hold tasks (24 bytes) and pointers only.
package pipeline
