package imageio

import (
	"testing"

	"github.com/alexnet-repro/alexnet/internal/fixtures"
)

// Regression: a TurboJPEG handle that failed inside a file's header made
// the next, valid, file fail with "missing SOS marker", so which files
// ingest skipped depended on which worker had seen the broken one.
func TestHandleRecoversAfterHeaderTruncation(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	full := fixtures.JPEG(t, 64, 64, 3, false)
	cuts := [][]byte{full[:len(full)/3], full[:40], full[:len(full)/2], {}}
	valid := [][]byte{fixtures.JPEG(t, 47, 35, 101, true), fixtures.JPEG(t, 40, 30, 5, false)}
	dst := make([]byte, 24*24*3)
	for _, cut := range cuts {
		if err := d.Preprocess(cut, 24, dst); err == nil {
			t.Fatalf("%d-byte cut accepted", len(cut))
		}
		for i, v := range valid {
			if err := d.Preprocess(v, 24, dst); err != nil {
				t.Fatalf("after a %d-byte cut, valid file %d fails: %v", len(cut), i, err)
			}
		}
	}
}
