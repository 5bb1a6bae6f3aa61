package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// NewFlags returns the flag set of command name: its errors and usage go
// to w, and the usage is usage (ending in a "Flags:" line) followed by the
// defaults of every flag defined on the set.
func NewFlags(name string, w io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprint(w, usage)
		fs.PrintDefaults()
	}
	return fs
}

// UsageError marks the user's mistake in flags or arguments, for commands
// that pass errors up to main: ExitCode makes it ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Parse parses args into fs. It returns nil, flag.ErrHelp after --help,
// or a UsageError (fs has already printed the complaint and the usage).
func Parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
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
