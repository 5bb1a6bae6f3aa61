package feed

import (
	"math"
	"time"
)

// markClock turns CUDA timing events into StepTiming offsets without
// losing precision on long runs. cuEventElapsedTime answers in float32
// milliseconds: measured from one origin, its step is 0.5 ms from 2^22 ms
// (70 minutes) and 1 ms from 2^23 ms (2.3 hours), which is all of a data
// wait. So each step's
// marks are measured from the previous step's end mark, a span of a few
// steps that float32 holds to nanoseconds, and the origin-relative times
// are kept as exact integer sums (time.Duration) of those spans.
//
// It is generic over the event type so that the arithmetic is tested on
// the CPU with a fake float32 clock.
type markClock[E any] struct {
	origin  E
	elapsed func(from, to E) (float32, error)

	lastSeq int64         // the last step read; -1 before any
	lastEnd time.Duration // its end, from the origin
}

func newMarkClock[E any](origin E, elapsed func(from, to E) (float32, error)) *markClock[E] {
	return &markClock[E]{origin: origin, elapsed: elapsed, lastSeq: -1}
}

// stepMarks are one step's events: prevEnd is the previous step's end
// mark (ignored for step 0, whose previous end is the origin).
type stepMarks[E any] struct {
	prevEnd, dataReady, end, copyStart, copyEnd E
}

// offset is the signed time from one mark to another. A batch's copy
// often starts before the previous step ends, so spans can be negative;
// should a driver clamp those to zero rather than sign them, the reverse
// span gives the value (a signing driver's negative answer stands).
func (c *markClock[E]) offset(from, to E) (time.Duration, error) {
	ms, err := c.elapsed(from, to)
	if err != nil {
		return 0, err
	}
	if ms == 0 {
		back, err := c.elapsed(to, from)
		if err != nil {
			return 0, err
		}
		if back > 0 {
			ms = -back
		}
	}
	// Rounded, not truncated: the origin-relative times are sums of
	// these, and truncation would bias each by up to a nanosecond.
	return time.Duration(math.Round(float64(ms) * float64(time.Millisecond))), nil
}

// timing reads step seq's marks. Steps are read in order; after a gap
// (a step never read) the previous end is measured from the origin once,
// at float32 precision, and the chain goes on from there.
func (c *markClock[E]) timing(seq int64, m stepMarks[E]) (StepTiming, error) {
	t := StepTiming{Seq: seq}
	anchor := c.origin
	switch {
	case seq == 0:
	case seq == c.lastSeq+1:
		anchor, t.PrevEnd = m.prevEnd, c.lastEnd
	default:
		d, err := c.offset(c.origin, m.prevEnd)
		if err != nil {
			return StepTiming{}, err
		}
		anchor, t.PrevEnd = m.prevEnd, d
	}
	for _, x := range []struct {
		dst *time.Duration
		e   E
	}{{&t.DataReady, m.dataReady}, {&t.End, m.end}, {&t.CopyStart, m.copyStart}, {&t.CopyEnd, m.copyEnd}} {
		d, err := c.offset(anchor, x.e)
		if err != nil {
			return StepTiming{}, err
		}
		*x.dst = t.PrevEnd + d
	}
	c.lastSeq, c.lastEnd = seq, t.End
	return t, nil
}
