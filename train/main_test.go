package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

func TestUsageAndDeviceErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"help", []string{"--help"}, cli.ExitOK, "Examples"},
		{"no shards", []string{}, cli.ExitUsage, "--shards DIR is required"},
		{"bad device", []string{"--shards", "x", "--device", "tpu"}, cli.ExitUsage, "unknown --device"},
		// No GPU here: the message names the library it could not load.
		{"cuda without a GPU", []string{"--shards", "x", "--device", "cuda"}, cli.ExitFailure, "libcuda.so.1"},
		{"missing shards", []string{"--shards", t.TempDir(), "--device", "cpu"}, cli.ExitFailure, "meta.json not found"},
		{"eval without checkpoint", []string{"--shards", "x", "--eval-only"}, cli.ExitUsage, "--checkpoint"},
		{"bad schedule", []string{"--shards", "x", "--schedule", "cosine"}, cli.ExitFailure, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var so, se bytes.Buffer
			code := run(context.Background(), c.args, &so, &se)
			if code != c.code || !strings.Contains(se.String()+so.String(), c.say) {
				t.Fatalf("exit %d (want %d), output:\n%s%s", code, c.code, so.String(), se.String())
			}
		})
	}
}
