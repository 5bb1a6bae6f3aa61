package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/ingest"
	"github.com/alexnet-repro/alexnet/shards"
)

func makeShards(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	fixtures.Tree(t, root, 8, 5)
	ds, err := imagenet.Open(root, imagenet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	out := t.TempDir()
	if _, err := ingest.Run(context.Background(), ds, ingest.Options{Out: out, Size: 32, Seed: 1, ShardSize: 6, Workers: 2, Codec: shards.CodecGradZstd}); err != nil {
		t.Fatal(err)
	}
	return out
}

func runTool(args ...string) (int, string, string) {
	var so, se bytes.Buffer
	code := run(context.Background(), args, &so, &se)
	return code, so.String(), se.String()
}

func TestVerifyNamesDamage(t *testing.T) {
	dir := makeShards(t)
	if code, out, errs := runTool("verify", dir); code != cli.ExitOK || !strings.Contains(out, "0 damaged") {
		t.Fatalf("clean verify: exit %d\n%s%s", code, out, errs)
	}
	// Flip one byte inside the third record of the second train shard.
	p := filepath.Join(dir, "train-00001.shard")
	r, err := shards.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec shards.Record
	if _, err := r.ReadRecord(2, &rec, nil); err != nil {
		t.Fatal(err)
	}
	r.Close()
	b, _ := os.ReadFile(p)
	pos := bytes.Index(b, rec.Payload[:8]) + 5
	b[pos] ^= 0x01
	os.WriteFile(p, b, 0o644)
	code, out, _ := runTool("verify", dir, "--decode")
	if code != cli.ExitDamaged {
		t.Fatalf("damaged verify: exit %d\n%s", code, out)
	}
	if !regexp.MustCompile(`shard train-00001.shard record 2 .*checksum mismatch`).MatchString(out) {
		t.Fatalf("damage not named by shard and record:\n%s", out)
	}
	code, out, _ = runTool("verify", "--json", dir)
	var res struct{ Damaged int }
	if json.Unmarshal([]byte(out), &res); code != cli.ExitDamaged || res.Damaged != 1 {
		t.Fatalf("json verify: exit %d %s", code, out)
	}
}

func TestInspectAndGrid(t *testing.T) {
	dir := makeShards(t)
	code, out, errs := runTool("inspect", dir)
	if code != 0 || !strings.Contains(out, "train") || !strings.Contains(out, "mean RGB") || !strings.Contains(out, "n01440764") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runTool("inspect", dir, "--json")
	var js struct {
		Classes int
		Splits  map[string]struct{ Records int }
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != 0 || js.Classes != 3 || js.Splits["train"].Records != 3*8+1 {
		t.Fatalf("inspect --json: %v %s", err, out)
	}
	png1 := filepath.Join(t.TempDir(), "g.png")
	if code, out, errs := runTool("grid", dir, "--n", "10", "--tile", "32", "--out", png1); code != 0 {
		t.Fatalf("grid: %d %s %s", code, out, errs)
	}
	f, _ := os.Open(png1)
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 4*32 {
		t.Fatalf("grid png: %v %v", err, img.Bounds())
	}
	if code, _, _ := runTool("grid", t.TempDir()); code != cli.ExitFailure {
		t.Fatalf("grid on an empty dir: exit %d", code)
	}
	if code, _, _ := runTool("frobnicate"); code != cli.ExitUsage {
		t.Fatal("unknown command accepted")
	}
}
