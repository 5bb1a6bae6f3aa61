package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Outcome is how a command with --json ends: a script that reads its
// stdout as JSON gets a JSON object there whichever way the run went.
// A failure is printed for a person on stderr ("train: the reason") and,
// when --json was asked for and the command wrote nothing to stdout yet,
// repeated on stdout as
//
//	{"command":"train","error":"the reason","exit_code":1}
//
// so `train --json ... | jq .` never meets an empty stream. A command that
// had begun its JSON output (predict's lines, a report) carries the error
// in that output instead, and Finish adds nothing.
type Outcome struct {
	name   string
	stdout *countingWriter
	stderr io.Writer
	// JSON is whether --json was given. NewOutcome reads it from the
	// arguments, so that a flag mistake found before --json is parsed is
	// still answered in JSON; the command may set it again after parsing.
	JSON bool
	msg  string
}

// NewOutcome starts the outcome of command name run with args. Its
// Stdout is the writer the command's results must go through.
func NewOutcome(name string, args []string, stdout, stderr io.Writer) *Outcome {
	return &Outcome{name: name, stdout: &countingWriter{w: stdout}, stderr: stderr, JSON: JSONAsked(args)}
}

// Stdout is the command's stdout, counted, so Finish can tell whether the
// command already began its own output.
func (o *Outcome) Stdout() io.Writer { return o.stdout }

// Fail prints the failure on stderr after the command's name, keeps it
// for Finish, and returns code.
func (o *Outcome) Fail(code int, a ...any) int {
	o.msg = strings.TrimSuffix(fmt.Sprintln(a...), "\n")
	fmt.Fprintf(o.stderr, "%s: %s\n", o.name, o.msg)
	return code
}

// Failf is Fail with a format.
func (o *Outcome) Failf(code int, format string, a ...any) int {
	o.msg = fmt.Sprintf(format, a...)
	fmt.Fprintf(o.stderr, "%s: %s\n", o.name, o.msg)
	return code
}

// Failed keeps msg as the failure's reason where the command has printed
// it already, and returns code.
func (o *Outcome) Failed(code int, msg string) int {
	o.msg = msg
	return code
}

// Reason is the failure's reason for a command that puts it into its own
// JSON output: "" when code is ExitOK.
func (o *Outcome) Reason(code int) string {
	if code == ExitOK {
		return ""
	}
	if o.msg == "" {
		return fmt.Sprintf("exit code %d (the reason is on stderr)", code)
	}
	return o.msg
}

// Finish ends the command with code. Under --json, a failure the command
// wrote no output for becomes the JSON error object on stdout. The code
// is returned as it was: a script reads both.
func (o *Outcome) Finish(code int) int {
	if !o.JSON || code == ExitOK || o.stdout.n > 0 {
		return code
	}
	o.WriteError(code)
	return code
}

// WriteError writes the JSON error object of a failure with code on
// stdout: Finish's, for a command whose stdout is JSON lines and that
// ends a stream it has begun with it (predict stopped by a signal).
func (o *Outcome) WriteError(code int) {
	b, _ := json.Marshal(struct {
		Command  string `json:"command"`
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}{o.name, o.Reason(code), code})
	o.stdout.Write(append(b, '\n'))
}

// JSONAsked says whether args turn --json on (the last of -json, --json,
// --json=BOOL before any "--" decides), without parsing the other flags.
// It cannot tell a value from a flag (`--out --json` names a folder
// "--json"); ParseFailed asks again knowing the flags.
func JSONAsked(args []string) bool { return jsonAsked(nil, args) }

// jsonAsked is JSONAsked that, given fs, skips the value of each flag fs
// defines with one, as fs.Parse would, and reads flags after positional
// arguments too, as ParseInterspersed does.
func jsonAsked(fs *flag.FlagSet, args []string) bool {
	on := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if name != "json" {
			if fs != nil && !hasVal && takesValue(fs, name) {
				i++
			}
			continue
		}
		if !hasVal {
			on = true
			continue
		}
		if b, err := strconv.ParseBool(val); err == nil {
			on = b
		}
	}
	return on
}

// takesValue says whether flag name of fs reads the next argument as its
// value: any flag fs defines that is not a boolean.
func takesValue(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// ParseFailed ends a command whose flags did not parse (err from Parse or
// ParseInterspersed, already printed by the flag set): it decides --json
// again knowing which flags take values, keeps err as the reason, and
// returns its exit code.
func (o *Outcome) ParseFailed(fs *flag.FlagSet, args []string, err error) int {
	o.JSON = jsonAsked(fs, args)
	return o.Failed(ExitCode(err), err.Error())
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
