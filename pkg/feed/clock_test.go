package feed

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeMark is an event as the GPU stamps it: nanoseconds on its clock.
type fakeMark int64

// cudaElapsed answers as cuEventElapsedTime does: the span between two
// 64-bit stamps, handed back as float32 milliseconds.
func cudaElapsed(from, to fakeMark) (float32, error) {
	return float32(float64(to-from) / 1e6), nil
}

// clampedElapsed is a driver that never reports a negative span.
func clampedElapsed(from, to fakeMark) (float32, error) {
	ms, _ := cudaElapsed(from, to)
	return max(ms, 0), nil
}

// TestMarkClockLongRun plays four hours of 40 ms steps through the clock
// and checks that every step's data wait, length and copy stay exact to a
// few nanoseconds. Measured from the origin, as before, float32
// milliseconds round to 0.5-1 ms by then, which is all of a wait.
func TestMarkClockLongRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		elapsed func(from, to fakeMark) (float32, error)
	}{{"signed", cudaElapsed}, {"clamped", clampedElapsed}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			c := newMarkClock(fakeMark(0), tc.elapsed)
			const steps = 360_000 // 4 h at 40 ms
			prevEnd := fakeMark(0)
			worst := time.Duration(0)
			for seq := int64(0); seq < steps; seq++ {
				wait := time.Duration(rng.IntN(300_000))                        // up to 0.3 ms
				length := 40*time.Millisecond + time.Duration(rng.IntN(50_000)) // 40-40.05 ms
				m := stepMarks[fakeMark]{prevEnd: prevEnd}
				m.dataReady = prevEnd + fakeMark(wait)
				m.end = m.dataReady + fakeMark(length)
				m.copyStart = prevEnd - fakeMark(5*time.Millisecond) // copied during the previous step
				m.copyEnd = m.copyStart + fakeMark(800*time.Microsecond)
				got, err := c.timing(seq, m)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range []time.Duration{
					got.Wait() - wait,
					got.Total() - (wait + length),
					got.CopyEnd - got.CopyStart - 800*time.Microsecond,
				} {
					worst = max(worst, d.Abs())
				}
				if seq > 0 && !(got.CopyStart < got.PrevEnd) {
					t.Fatalf("step %d: copy start %v not before the previous end %v", seq, got.CopyStart, got.PrevEnd)
				}
				prevEnd = m.end
			}
			if worst > 10*time.Nanosecond {
				t.Errorf("a span is off by %v after %d steps; want a few ns", worst, steps)
			}
			// The origin-relative end drifts only by the rounding of each
			// span, far below the 0.5 µs the GPU's clock resolves.
			if drift := (c.lastEnd - time.Duration(prevEnd)).Abs(); drift > time.Millisecond {
				t.Errorf("end of run off by %v", drift)
			}
			t.Logf("worst span error %v; end of run %v from the truth", worst, (c.lastEnd - time.Duration(prevEnd)).Abs())
		})
	}
}

// TestMarkClockGapAndErrors: a step never read restarts the chain from
// the origin, and an event error comes back.
func TestMarkClockGapAndErrors(t *testing.T) {
	c := newMarkClock(fakeMark(0), cudaElapsed)
	ms := fakeMark(time.Millisecond)
	st, err := c.timing(0, stepMarks[fakeMark]{dataReady: 1 * ms, end: 10 * ms, copyStart: 0, copyEnd: ms / 2})
	if err != nil || st.PrevEnd != 0 || st.Wait() != time.Millisecond || st.Total() != 10*time.Millisecond {
		t.Fatalf("step 0: %+v, %v", st, err)
	}
	// Step 1 was never read; step 2's previous end is step 1's.
	st, err = c.timing(2, stepMarks[fakeMark]{prevEnd: 20 * ms, dataReady: 22 * ms, end: 30 * ms, copyStart: 15 * ms, copyEnd: 16 * ms})
	if err != nil || st.PrevEnd != 20*time.Millisecond || st.Wait() != 2*time.Millisecond || st.End != 30*time.Millisecond || st.CopyStart != 15*time.Millisecond {
		t.Fatalf("step 2 after a gap: %+v, %v", st, err)
	}
	boom := errors.New("cuEventElapsedTime: not ready")
	c = newMarkClock(fakeMark(0), func(from, to fakeMark) (float32, error) { return 0, boom })
	if _, err := c.timing(0, stepMarks[fakeMark]{}); !errors.Is(err, boom) {
		t.Fatalf("error lost: %v", err)
	}
}
