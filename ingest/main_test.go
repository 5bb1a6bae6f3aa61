package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
)

// The test binary doubles as the ingest command when this variable is set,
// so a test can kill a real ingest process.
func TestMain(m *testing.M) {
	if os.Getenv("INGEST_AS_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func outputs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() || e.Name() == "ingest-report.json" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = b
	}
	return m
}

// Killed with SIGKILL at some moment, then run again with the same
// arguments, ingest ends with output byte-identical to an uninterrupted
// run's.
func TestKill9ThenResume(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 70, 20)
	args := func(out string) []string {
		return []string{"--quiet", "--size", "48", "--shard-size", "8", "--workers", "1", "--out", out, root}
	}
	want := t.TempDir()
	var so, se bytes.Buffer
	if code := run(context.Background(), args(want), &so, &se); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, se.String())
	}
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], args(out)...)
	cmd.Env = append(os.Environ(), "INGEST_AS_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once a few shards exist, so the kill lands mid-run.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(out, "train-*.shard")); len(m) >= 3 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(out, "meta.json")); err == nil {
		t.Skip("the run finished before the kill landed; nothing to resume")
	}
	se.Reset()
	if code := run(context.Background(), args(out), &so, &se); code != 0 {
		t.Fatalf("resumed run: exit %d: %s", code, se.String())
	}
	if !strings.Contains(se.String(), "resum") {
		t.Errorf("resumed run did not say it resumed:\n%s", se.String())
	}
	a, b := outputs(t, want), outputs(t, out)
	if len(a) != len(b) {
		t.Fatalf("%d files vs %d", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Fatalf("%s differs after kill -9 and resume", k)
		}
	}
}

func TestExitCodes(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 3, 2)
	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"help", []string{"--help"}, cli.ExitOK, "Example"},
		{"no dataset", []string{}, cli.ExitUsage, "exactly one dataset"},
		{"bad codec", []string{"--codec", "jpeg", root}, cli.ExitUsage, "unknown codec"},
		{"missing dir", []string{filepath.Join(root, "nope")}, cli.ExitFailure, "nope"},
		{"skips are fine", []string{"--quiet", "--size", "16", "--out", t.TempDir(), root}, cli.ExitOK, "skipped"},
		{"strict", []string{"--quiet", "--strict", "--size", "16", "--out", t.TempDir(), root}, cli.ExitSkipped, "--strict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var so, se bytes.Buffer
			if code := run(context.Background(), c.args, &so, &se); code != c.code {
				t.Fatalf("exit %d want %d: %s", code, c.code, se.String())
			}
			if !strings.Contains(se.String()+so.String(), c.say) {
				t.Fatalf("output lacks %q:\n%s", c.say, se.String())
			}
		})
	}
}
