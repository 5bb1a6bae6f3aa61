package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
)

// The test binary doubles as the train command when this variable is set:
// main itself runs, with its signal handling.
func TestMain(m *testing.M) {
	if os.Getenv("TRAIN_AS_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// A real Ctrl-C (SIGINT to a real train process, not a cancelled context)
// finishes the step in flight, saves it and exits 130 saying --resume
// continues it; the resumed run then goes on from that step.
func TestCtrlCSavesAndResumes(t *testing.T) {
	shardDir := fixtureShards(t, 40, 6, 32)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small", "--crop", "32",
		"--batch", "8", "--epochs", "1000", "--log-every", "1", "--checkpoint-every", "0", "--workers", "1"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TRAIN_AS_MAIN=1")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(pipe)
	sent := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if !sent && strings.HasPrefix(sc.Text(), "step      3 ") {
			cmd.Process.Signal(os.Interrupt)
			sent = true
		}
	}
	io.Copy(io.Discard, pipe)
	err = cmd.Wait()
	if !sent {
		t.Fatalf("no step 3 line to interrupt at (%v):\n%s", err, log.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("after SIGINT: %v, want exit %d\n%s", err, cli.ExitInterrupted, log.String())
	}
	if !strings.Contains(log.String(), "--resume continues it") {
		t.Fatalf("no line saying the run was saved:\n%s", log.String())
	}
	// Named by the signal, not by the context's "context canceled".
	if !strings.Contains(log.String(), "interrupted (SIGINT, Ctrl-C) after step") {
		t.Errorf("the interrupt is not named by its signal:\n%s", log.String())
	}
	ck, err := trainer.Load(filepath.Join(out, trainer.CheckpointFile))
	if err != nil || ck.Step < 3 {
		t.Fatalf("checkpoint after the interrupt: %v, %v", ck, err)
	}
	// It resumes from there; --max-steps bounds the rest. The run's
	// model, batch and crop come from its checkpoint when left out, and
	// one given that differs is refused naming it.
	var so, se strings.Builder
	short := []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--workers", "1", "--resume"}
	if code := run(context.Background(), append(short, "--model", "small-fc"), &so, &se); code != cli.ExitUsage ||
		!strings.Contains(se.String(), "--model small, not small-fc (leave those flags out") {
		t.Fatalf("resume with another --model: exit %d\n%s", code, se.String())
	}
	se.Reset()
	if code := run(context.Background(), append(short, "--max-steps", strconv.FormatInt(ck.Step+2, 10)), &so, &se); code != cli.ExitOK {
		t.Fatalf("resume: exit %d\n%s", code, se.String())
	}
	if !strings.Contains(se.String(), "the run's --model small, --batch 8, --crop 32, --epochs 1000, --log-every 1, from its checkpoint") {
		t.Errorf("the resume did not say what it took from the checkpoint:\n%s", se.String())
	}
	after, err := trainer.Load(filepath.Join(out, trainer.CheckpointFile))
	if err != nil || after.Step != ck.Step+2 {
		t.Fatalf("resumed to step %v (%v), want %d", after, err, ck.Step+2)
	}
	// A flipped bit in the checkpoint is named as damage (exit 1), before
	// any flag left out is judged at its default, with the intact previous
	// checkpoint (the interrupt's) offered to go on from.
	b, err := os.ReadFile(filepath.Join(out, trainer.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x10
	if err := os.WriteFile(filepath.Join(out, trainer.CheckpointFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	se.Reset()
	// The damage is located: the tensor whose bytes hold the flipped one.
	prev := regexp.QuoteMeta(fmt.Sprintf("; the checkpoint before it, %s (step %d;", filepath.Join(out, trainer.PrevCheckpointFile), ck.Step))
	want := regexp.MustCompile(`checksum mismatch, in tensor (\S+) \(bytes (\d+)–(\d+), or its CRC in the header\); the other (\d+) tensors are intact` + prev)
	code := run(context.Background(), short, &so, &se)
	m := want.FindStringSubmatch(se.String())
	if code != cli.ExitFailure || m == nil {
		t.Fatalf("resume from a damaged checkpoint: exit %d, want %d saying %q\n%s", code, cli.ExitFailure, want, se.String())
	}
	from, _ := strconv.Atoi(m[2])
	to, _ := strconv.Atoi(m[3])
	if others, _ := strconv.Atoi(m[4]); from > len(b)/3 || len(b)/3 > to || others != len(ck.Tensors)-1 {
		t.Fatalf("the flipped byte %d is not where the message says: %s", len(b)/3, m[0])
	}
}
