package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
)

// NewFlags returns the flag set of command name. The usage is usage
// (ending in a "Flags:" line) followed by the defaults of every flag
// defined on the set. Asked for with --help or -h, it goes to stdout, so
// `train --help | less` works; after a mistake in the flags it follows the
// complaint to stderr, where everything else the set prints goes too.
func NewFlags(name string, stdout, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	out := &usageOutput{stdout: stdout, stderr: stderr}
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usage)
		fs.PrintDefaults()
	}
	return fs
}

// usageOutput is a flag set's output. While Parse runs it holds what the
// set prints, until the outcome says whether that was the help asked for
// (stdout) or a complaint (stderr); at other times it writes to stderr.
type usageOutput struct {
	stdout, stderr io.Writer
	held           *bytes.Buffer
}

func (u *usageOutput) Write(p []byte) (int, error) {
	if u.held != nil {
		return u.held.Write(p)
	}
	return u.stderr.Write(p)
}

// parse runs fs.Parse, sending what it printed where its outcome says.
func parse(fs *flag.FlagSet, args []string) error {
	u, ok := fs.Output().(*usageOutput)
	if !ok {
		return fs.Parse(args)
	}
	u.held = &bytes.Buffer{}
	err := fs.Parse(args)
	held := u.held
	u.held = nil
	if errors.Is(err, flag.ErrHelp) {
		u.stdout.Write(held.Bytes())
		return err
	}
	// The flag package's complaint comes first; it gets the command's
	// name, as every other error line of the commands does, and a blank
	// line parts it from the usage.
	b := held.Bytes()
	if err != nil {
		if line, rest, ok := bytes.Cut(b, []byte("\n")); ok && string(line) == err.Error() {
			b = append([]byte(fs.Name()+": "+string(line)+"\n\n"), rest...)
		}
	}
	u.stderr.Write(b)
	return err
}

// UsageError marks the user's mistake in flags or arguments, for commands
// that pass errors up to main: ExitCode makes it ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Parse parses args into fs. It returns nil, flag.ErrHelp after --help,
// or a UsageError (fs has already printed the complaint and the usage).
func Parse(fs *flag.FlagSet, args []string) error {
	err := parse(fs, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return UsageError{err}
}

// ParseInterspersed is Parse that lets flags come before or after the
// positional arguments (`shardtool grid DIR --n 64`, `predict ... a.JPEG
// --json`), returning the positional ones in order. Everything after a
// "--" is positional, so a file named like a flag can still be given.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := Parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return append(pos, rest...), nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ParseFlags is Parse for commands that return exit codes: when ok is
// false the command returns code at once (ExitOK after --help).
func ParseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := Parse(fs, args); err != nil {
		return ExitCode(err), false
	}
	return ExitOK, true
}

// ExitCode is the exit code for the error a command ends with: ExitOK for
// nil and --help, ExitUsage for a UsageError, ExitFailure otherwise.
func ExitCode(err error) int {
	var u UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	}
	return ExitFailure
}
