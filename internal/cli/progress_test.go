package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The terminal bar is not drawn before the first item: drawn at 0 it has
// no rate and reads "0 img/hr".
func TestProgressBarWaitsForTheFirstItem(t *testing.T) {
	var b bytes.Buffer
	p := &Progress{bar: newBar(&b, "ingest train", 100)}
	p.Set(0)
	if b.Len() != 0 {
		t.Fatalf("drawn at 0 done: %q", b.String())
	}
	time.Sleep(5 * time.Millisecond)
	p.Set(1)
	out := b.String()
	if !strings.Contains(out, "ingest train") || !strings.Contains(out, "(1/100, ") || strings.Contains(out, "img/hr") {
		t.Fatalf("after the first item: %q", out)
	}
}

// A task stopped short keeps its count on the bar when it closes; one done
// fills it.
func TestProgressFinish(t *testing.T) {
	for _, c := range []struct {
		done      int
		want, not string
	}{
		{4, "(4/100, ", "100/100"},
		{100, "(100/100, ", ""},
		{0, "", "100"}, // never drawn: nothing to close
	} {
		var b bytes.Buffer
		p := &Progress{bar: newBar(&b, "ingest train", 100), total: 100}
		p.Set(c.done)
		p.Finish()
		out := b.String()
		if !strings.Contains(out, c.want) || c.not != "" && strings.Contains(out, c.not) {
			t.Errorf("done %d: %q", c.done, out)
		}
		if c.done == 0 && out != "" {
			t.Errorf("done 0: closed a bar never drawn: %q", out)
		}
	}
}
