// Command shardtool inspects and checks shard directories written by
// ingest: `verify` re-reads every byte and names any damage, `inspect`
// summarises meta.json, and `grid` draws a contact sheet of records with
// their class names.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const topUsage = `Usage: shardtool COMMAND [flags] DIR

Commands:
  verify DIR [--decode] [--json] [--workers 0]
                                   re-read every record and check every checksum;
                                   exit 4 naming the shard and record of any damage
  inspect DIR [--json] [--classes 10]
                                   counts, classes, sizes and pixel statistics
  grid DIR [--n 64] [--out grid.png] [--split train] [--tile 128]
                                   a contact sheet of records with class names

Exit codes: 0 done (verify: no damage), 1 failed or interrupted (verify:
also a split an unfinished ingest unlisted), 2 usage (or a DIR that does
not exist or is a file), 4 verify found damage.

Example:
  shardtool verify ./shards
  shardtool grid ./shards --n 64 --out grid.png
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return cli.ExitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		return cli.PrintHelp("shardtool", topUsage, stdout, stderr) // asked for: stdout, as every command's --help
	}
	// Flags before the command (`shardtool --json verify DIR`), as many
	// tools take them: the command is the first argument that names one.
	if strings.HasPrefix(args[0], "-") {
		for i, a := range args {
			if a == "--" {
				break
			}
			if a == "verify" || a == "inspect" || a == "grid" {
				args = append(append([]string{a}, args[:i]...), args[i+1:]...)
				break
			}
		}
	}
	switch args[0] {
	case "verify":
		return verify(ctx, args[1:], stdout, stderr)
	case "inspect":
		return inspect(args[1:], stdout, stderr)
	case "grid":
		return grid(ctx, args[1:], stdout, stderr)
	}
	// Flags before the command (`shardtool --json verify DIR`) or a
	// misspelt command: under --json, the usage error is JSON too.
	o := cli.NewOutcome("shardtool", args, stdout, stderr)
	// The word the user meant as the command: the first that is no flag
	// ("shardtool --json bogus" names bogus, not --json).
	cmd := args[0]
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			cmd = a
			break
		}
	}
	if near := cli.Nearest(strings.ToLower(cmd), []string{"verify", "inspect", "grid"}); near != "" {
		return o.Finish(o.Failf(cli.ExitUsage, "unknown command %q; did you mean %s? (see --help)", cmd, near))
	}
	return o.Finish(o.Failf(cli.ExitUsage, "unknown command %q (want verify, inspect or grid; see --help)", cmd))
}
