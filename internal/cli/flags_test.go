package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		ok       bool
		stdout   []string // what stdout must contain: the help asked for
		stderr   []string // what stderr must contain: complaints, with the usage
		n        int
		nonFlags int
	}{
		{"flags only", []string{"--n", "3"}, ExitOK, true, nil, nil, 3, 0},
		{"a word among the flags", []string{"--n", "3", "a", "--count", "2"}, ExitUsage, false, nil, []string{"demo: unexpected argument \"a\": it takes flags only (see --help)\n"}, 3, 0},
		{"help", []string{"--help"}, ExitOK, false, []string{"Usage: demo [flags] ARG", "Flags:", "-n int", "how many (default 1)"}, nil, 1, 0},
		{"-h", []string{"-h"}, ExitOK, false, []string{"Usage: demo"}, nil, 1, 0},
		{"help after a flag", []string{"--n", "2", "-help"}, ExitOK, false, []string{"Usage: demo"}, nil, 2, 0},
		{"unknown flag", []string{"--bogus"}, ExitUsage, false, nil, []string{"demo: flag provided but not defined: -bogus (see --help)\n"}, 1, 0},
		{"a typo of a flag", []string{"--cuont", "3"}, ExitUsage, false, nil, []string{"demo: flag provided but not defined: -cuont; did you mean --count? (see --help)\n"}, 1, 0},
		{"a flag in capitals", []string{"--COUNT", "3"}, ExitUsage, false, nil, []string{"did you mean --count?"}, 1, 0},
		{"another tool's name for a flag", []string{"--batch-size", "3"}, ExitUsage, false, nil, []string{"-batch-size; did you mean --batch?"}, 1, 0},
		{"bad value", []string{"--n", "x"}, ExitUsage, false, nil, []string{"demo: invalid value \"x\" for flag -n: parse error (see --help)\n"}, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			fs := NewFlags("demo", &stdout, &stderr, "Usage: demo [flags] ARG\n\nFlags:\n")
			n := fs.Int("n", 1, "how many")
			fs.Int("count", 0, "a count")
			fs.Int("counts", 0, "counts")
			fs.Int("batch", 0, "a batch")
			code, ok := ParseFlags(fs, tc.args)
			if code != tc.code || ok != tc.ok {
				t.Fatalf("ParseFlags = %d, %v; want %d, %v", code, ok, tc.code, tc.ok)
			}
			for _, c := range []struct {
				name string
				got  string
				want []string
			}{{"stdout", stdout.String(), tc.stdout}, {"stderr", stderr.String(), tc.stderr}} {
				for _, s := range c.want {
					if !strings.Contains(c.got, s) {
						t.Errorf("%s lacks %q:\n%s", c.name, s, c.got)
					}
				}
				if len(c.want) == 0 && c.got != "" {
					t.Errorf("%s should be empty: %q", c.name, c.got)
				}
			}
			if tc.ok && (*n != tc.n || fs.NArg() != tc.nonFlags) {
				t.Errorf("n = %d, %d arguments", *n, fs.NArg())
			}
			// A mistake is one line: the usage would push it out of sight.
			if tc.code == ExitUsage && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("a mistake printed more than its line:\n%s", stderr.String())
			}
			// After Parse, what the set prints (a command's own usage
			// complaint) goes to stderr.
			stderr.Reset()
			fs.Usage()
			if !strings.Contains(stderr.String(), "Usage: demo") {
				t.Errorf("fs.Usage after Parse wrote %q to stderr", stderr.String())
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"epochs", "epochs", 0}, {"epohcs", "epochs", 1}, {"epoch", "epochs", 1},
		{"lerning-rate", "lr", 10}, {"szie", "size", 1}, {"", "abc", 3}, {"ab", "ba", 1}, {"workrs", "workers", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"help", flag.ErrHelp, ExitOK},
		{"wrapped help", fmt.Errorf("bench: %w", flag.ErrHelp), ExitOK},
		{"usage", UsageError{errors.New("--out is required")}, ExitUsage},
		{"wrapped usage", fmt.Errorf("mkdemo: %w", UsageError{errors.New("x")}), ExitUsage},
		{"failure", errors.New("disk full"), ExitFailure},
	}
	for _, tc := range cases {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode = %d, want %d", tc.name, got, tc.want)
		}
	}
	if err := Parse(NewFlags("x", io.Discard, io.Discard, ""), []string{"--nope"}); ExitCode(err) != ExitUsage || err.Error() != "flag provided but not defined: -nope (see --help)" {
		t.Errorf("Parse(--nope) = %v", err)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		k    int
		json bool
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, 5, false},
		{[]string{"--k", "2", "a", "--json", "b"}, []string{"a", "b"}, 2, true},
		{[]string{"a", "--json", "--", "--k", "-b"}, []string{"a", "--k", "-b"}, 5, true},
		{[]string{"--", "--json"}, []string{"--json"}, 5, false},
		{nil, nil, 5, false},
	} {
		fs := NewFlags("t", io.Discard, io.Discard, "")
		k := fs.Int("k", 5, "")
		j := fs.Bool("json", false, "")
		pos, err := ParseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *k != tc.k || *j != tc.json {
			t.Errorf("%q: positional %q, k %d, json %v, %v; want %q, %d, %v", tc.args, pos, *k, *j, err, tc.pos, tc.k, tc.json)
		}
	}
	fs := NewFlags("t", io.Discard, io.Discard, "")
	if _, err := ParseInterspersed(fs, []string{"a", "--nope"}); ExitCode(err) != ExitUsage {
		t.Errorf("an unknown flag after a positional argument: %v", err)
	}
}

// failingWriter is stdout on a full disk or a closed pipe.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestHelpNotWritten(t *testing.T) {
	var stderr strings.Builder
	fs := NewFlags("demo", failingWriter{}, &stderr, "Usage: demo\n")
	code, ok := ParseFlags(fs, []string{"--help"})
	if code != ExitFailure || ok {
		t.Fatalf("--help to a failing stdout: ParseFlags = %d, %v; want %d, false", code, ok, ExitFailure)
	}
	if want := "demo: writing the help: no space left on device\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	err := Parse(NewFlags("demo", failingWriter{}, io.Discard, ""), []string{"-h"})
	if !Reported(err) || ExitCode(err) != ExitFailure {
		t.Errorf("Parse(-h) to a failing stdout = %v (reported %v, exit %d)", err, Reported(err), ExitCode(err))
	}
}

func TestPrintHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := PrintHelp("tool", "Usage: tool\n", &stdout, &stderr); code != ExitOK || stdout.String() != "Usage: tool\n" || stderr.Len() != 0 {
		t.Errorf("PrintHelp = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stderr.Reset()
	if code := PrintHelp("tool", "Usage: tool\n", failingWriter{}, &stderr); code != ExitFailure || stderr.String() != "tool: writing the help: no space left on device\n" {
		t.Errorf("PrintHelp to a failing stdout = %d, stderr %q", code, stderr.String())
	}
}

func TestNearest(t *testing.T) {
	cmds := []string{"verify", "inspect", "grid"}
	for _, tc := range []struct{ name, want string }{
		{"veriffy", "verify"}, {"inpsect", "inspect"}, {"gird", "grid"}, {"grdi", "grid"}, {"list", ""}, {"", ""}, {"verify", "verify"},
	} {
		if got := Nearest(tc.name, cmds); got != tc.want {
			t.Errorf("Nearest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := Nearest("ab", []string{"ac", "ad"}); got != "" {
		t.Errorf("a tie gave %q", got)
	}
}

func TestGiven(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("k", 5, "")
	fs.Int("n", 1, "")
	if err := fs.Parse([]string{"--k", "5"}); err != nil {
		t.Fatal(err)
	}
	if !Given(fs, "k") || Given(fs, "n") || Given(fs, "absent") {
		t.Errorf("Given: k %v, n %v, absent %v; want true, false, false", Given(fs, "k"), Given(fs, "n"), Given(fs, "absent"))
	}
}

func TestStrayBoolValue(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("strict", false, "")
	fs.Int("k", 5, "")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct {
		args, pos []string
		want      string
	}{
		{[]string{"--strict", "true", "d"}, []string{"true", "d"}, `unexpected argument "true": --strict takes its value after =, as --strict=true`},
		{[]string{"d", "--strict", "false"}, []string{"d", "false"}, `"false": --strict takes its value after =, as --strict=false`},
		{[]string{"--strict=true", "d"}, []string{"d"}, ""},
		{[]string{"--k", "1", "d"}, []string{"d"}, ""},     // an int flag's value is its own
		{[]string{"d", "true"}, []string{"d", "true"}, ""}, // no bool flag before it
		{[]string{"--strict", "1"}, []string{"1"}, ""},     // a folder of that name is an argument
	} {
		got := ""
		if err := StrayBoolValue(fs, tc.args, tc.pos); err != nil {
			got = err.Error()
		}
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
}
