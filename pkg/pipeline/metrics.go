package pipeline

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// StageMetrics is one stage's counters since the pipeline started, summed
// over its workers. Busy, WaitIn and WaitOut are worker-time, so for a
// stage of W workers they add up to about W × Elapsed; a stage whose
// workers mostly wait on input is starved by the stage before it, one that
// mostly waits on output is held back by the stage after it.
// The JSON names are the benches' snake_case, the durations nanoseconds.
type StageMetrics struct {
	Name    string        `json:"name"`
	Workers int           `json:"workers"`
	Items   int64         `json:"items"`      // tasks, records or batches handled
	Busy    time.Duration `json:"busy_ns"`    // doing the stage's own work
	WaitIn  time.Duration `json:"wait_in_ns"` // blocked waiting for input
	// blocked handing output on (or waiting for a free buffer or slot)
	WaitOut time.Duration `json:"wait_out_ns"`
	// Queue is the depth of the stage's input queue at the snapshot, of
	// QueueCap; MeanQueue is its mean depth as seen by each receive.
	Queue     int     `json:"queue"`
	QueueCap  int     `json:"queue_cap"`
	MeanQueue float64 `json:"mean_queue"`
}

// Metrics is a snapshot of every stage, in pipeline order: plan, read,
// decode, deliver. For deliver, Items counts batches, WaitIn is the time
// Next spent waiting for a batch (the consumer starved) and WaitOut the
// time between Next calls (the consumer busy), Queue the batches queued
// for delivery, complete or not.
type Metrics struct {
	Elapsed time.Duration
	// Inflate is the decode workers' time in the codec's entropy stage (zstd,
	// or Huffman for grad-huff), part
	// of decode's Busy: the decompress-only cost of the same records,
	// measured in the same run.
	Inflate    time.Duration
	Stages     []StageMetrics
	OpenShards int
	FreeSlots  int
	Slots      int
}

// Stage returns the named stage's metrics, or a zero value.
func (m Metrics) Stage(name string) StageMetrics {
	for _, s := range m.Stages {
		if s.Name == name {
			return s
		}
	}
	return StageMetrics{}
}

// Print writes a table of the stages, with each stage's time split into
// shares of its worker-time.
func (m Metrics) Print(w io.Writer) {
	fmt.Fprintf(w, "%-8s %7s %9s %9s %7s %7s %7s %11s\n", "stage", "workers", "items", "items/s", "busy", "in-wait", "out-wait", "queue(mean)")
	for _, s := range m.Stages {
		tot := (s.Busy + s.WaitIn + s.WaitOut).Seconds()
		pct := func(d time.Duration) string {
			if tot == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", 100*d.Seconds()/tot)
		}
		rate := 0.0
		if m.Elapsed > 0 {
			rate = float64(s.Items) / m.Elapsed.Seconds()
		}
		fmt.Fprintf(w, "%-8s %7d %9d %9.0f %7s %7s %7s %4d/%-3d(%.1f)\n", s.Name, s.Workers, s.Items, rate,
			pct(s.Busy), pct(s.WaitIn), pct(s.WaitOut), s.Queue, s.QueueCap, s.MeanQueue)
	}
	fmt.Fprintf(w, "open shards %d, free slots %d of %d, elapsed %v\n", m.OpenShards, m.FreeSlots, m.Slots, m.Elapsed.Round(time.Millisecond))
}

// stageCounters are updated by a stage's workers with atomic adds, a few
// per record, so a snapshot can be taken at any moment.
type stageCounters struct {
	name                  string
	workers               int
	items                 atomic.Int64
	busy, waitIn, waitOut atomic.Int64 // nanoseconds
	depthSum, depthN      atomic.Int64
}

func (c *stageCounters) sampleDepth(n int) {
	c.depthSum.Add(int64(n))
	c.depthN.Add(1)
}

func (c *stageCounters) snapshot(queue, queueCap int) StageMetrics {
	s := StageMetrics{
		Name: c.name, Workers: c.workers, Items: c.items.Load(),
		Busy:    time.Duration(c.busy.Load()),
		WaitIn:  time.Duration(c.waitIn.Load()),
		WaitOut: time.Duration(c.waitOut.Load()),
		Queue:   queue, QueueCap: queueCap,
	}
	if n := c.depthN.Load(); n > 0 {
		s.MeanQueue = float64(c.depthSum.Load()) / float64(n)
	}
	return s
}
