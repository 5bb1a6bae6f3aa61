package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

// The bench runs end to end at a small size: every budget's run is there,
// with a peak RSS, and the table names the reference.
func TestRunSmall(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ingest")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/alexnet-repro/alexnet/ingest").CombinedOutput(); err != nil {
		t.Fatalf("building ingest: %v\n%s", err, out)
	}
	var so, se bytes.Buffer
	if code := run([]string{"--ingest", bin, "--side", "2400", "--images", "3", "--budgets", "0,40", "--rounds", "1", "--json"}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var got struct {
		FileBytes int       `json:"file_bytes"`
		Runs      []measure `json:"runs"`
	}
	if err := json.Unmarshal(so.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, so.String())
	}
	if len(got.Runs) != 2 || got.Runs[0].BudgetMiB != 0 || got.Runs[1].BudgetMiB != 40 || got.FileBytes == 0 {
		t.Fatalf("runs %+v, file %d bytes", got.Runs, got.FileBytes)
	}
	for _, m := range got.Runs {
		if m.PeakRSSMiB <= 0 || m.Seconds <= 0 {
			t.Errorf("run %+v measured nothing", m)
		}
	}
	tab := table(got.Runs, []int64{0, 40}, 3, 2400, 2)
	if !strings.Contains(tab, "0 (no bound: the reference)") || !strings.Contains(tab, "| 40 MiB |") {
		t.Errorf("table:\n%s", tab)
	}
	for _, bad := range [][]string{{"--budgets", "x"}, {"--budgets", "-1"}, {"--images", "0"}} {
		if code := run(bad, &so, &se); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, cli.ExitUsage)
		}
	}
}
