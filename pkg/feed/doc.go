// Package feed owns the double-buffered way from the pipeline's pinned
// host slots to device memory: the copy of batch n+1 runs on its own
// stream while the GPU computes step n, and the training step never reads
// a buffer the copier is writing.
//
// # Order of events
//
// With two device buffers A and B, step n reading A:
//
//	copier goroutine                 copy stream              compute stream
//	Next() -> slot n+1
//	take token B (freed by n-1)
//	Upload(n+1, B) ───────────────►  wait free[B]
//	                                 copy slot -> B
//	                                 record ready[B]
//	hand batch n+1 to the consumer
//	Uploaded(B): host waits          ... copy lands ...
//	slot n+1 back to the pipeline
//	                                                          (step n runs on A)
//	consumer: Begin(n+1) ──────────────────────────────────►  wait ready[B], mark
//	          normalise B, copy labels ────────────────────►  kernels
//	          Free(n+1) ───────────────────────────────────►  record free[B]; token B back
//	          forward, backward, update ───────────────────►  kernels
//	          End(n+1) ────────────────────────────────────►  mark
//
// A buffer's token goes back to the copier only after its free event has
// been recorded, so the copy stream's wait always refers to the right
// record, and at most Buffers() batches are in flight. The waits between
// streams are on the device (cuStreamWaitEvent): the host never blocks to
// order the GPU, and the only host waits are the copier's (the copy must
// land before its slot is reused) and the consumer's own result reads.
// Both sleep rather than spin (CUDADevice's events are blocking-sync), so
// they leave the CPU to the pipeline's decoders.
//
// # Ownership and goroutines
//
// New starts one goroutine, the copier; Close stops it and waits for it.
// The copier owns a slot from the source's Next until the slot's copy has
// landed, then releases it: the pipeline can refill a slot while the GPU
// is still computing with its contents' copy. The device buffers belong
// to the Device; a Batch lends one to the consumer from Next until Free.
// Next, Begin, Free, End and Stats' collection belong to the consumer's
// goroutine; Stats may be read from anywhere.
//
// # Data wait
//
// Every step's wait is measured on the device clock: from the end of the
// previous step to the moment the compute stream has the batch. It
// includes the pipeline being late, the copy being late, and the
// consumer queueing the step late; Options.Log prints it per step, and
// Stats sums it. CUDADevice implements the marks with timing events, each
// read against the previous step's end rather than one origin, so a
// float32 millisecond count keeps nanoseconds however long the run.
//
// # Failure and close
//
// An Upload that fails may already have queued its copy: the copier
// drains the copy stream (Device.Drain) before the slot goes back, and
// keeps the slot if even that fails. Close stops the copier at the batch
// it holds; it waits for a source Next already under way, never for more.
//
// # Layout
//
// A slot is one block (Layout): labels, lighting offsets, then pixels, so
// a batch crosses in one copy and the device buffer has the same shape.
// PinnedSlots allocates such slots with cuMemHostAlloc for
// pipeline.Options.Slots.
package feed
