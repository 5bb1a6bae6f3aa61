package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// NewFlags returns the flag set of command name. The usage is usage
// (ending in a "Flags:" line) followed by the defaults of every flag
// defined on the set. Asked for with --help or -h, it goes to stdout, so
// `train --help | less` works; a mistake in the flags is one line on
// stderr that points to --help (parse). Usage called by the command itself
// prints to stderr.
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
// (stdout) or a complaint (replaced by parse's one line); at other times
// it writes to stderr.
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

// parse runs fs.Parse. The help asked for goes to stdout. A mistake is
// one line on stderr, named like every other error line of the commands,
// with the flag meant when an unknown one is a typo of it: the usage the
// flag package prints after it would push the line out of sight (80 lines
// for train), so it is pointed to instead.
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
		// `cmd --help > /dev/full` must not exit 0 as if the help was
		// read: like cat and ls, a failed write is a failure (exit 1).
		if _, werr := u.stdout.Write(held.Bytes()); werr != nil {
			err = fmt.Errorf("%w: %w", errHelpNotWritten, werr)
			fmt.Fprintf(u.stderr, "%s: %v\n", fs.Name(), err)
			return reportedError{err}
		}
		return err
	}
	if err != nil {
		hint := ""
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			if near := nearestFlag(fs, name); near != "" {
				hint = "; did you mean --" + near + "?"
			}
		}
		err = fmt.Errorf("%w%s (see --help)", err, hint)
		fmt.Fprintf(u.stderr, "%s: %v\n", fs.Name(), err)
		err = reportedError{err}
	}
	return err
}

// PrintHelp writes text, the help asked for, to stdout and returns the
// exit code: ExitFailure, with the reason on stderr, when the write failed
// (`shardtool --help > /dev/full`), as parse does for a flag set's help.
func PrintHelp(name, text string, stdout, stderr io.Writer) int {
	if _, err := io.WriteString(stdout, text); err != nil {
		fmt.Fprintf(stderr, "%s: %v: %v\n", name, errHelpNotWritten, err)
		return ExitFailure
	}
	return ExitOK
}

// errHelpNotWritten is --help whose output could not be written: not the
// user's mistake in the flags, so not a UsageError.
var errHelpNotWritten = errors.New("writing the help")

// reportedError is a parse error parse has printed already.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// Reported says whether err is a flag mistake that was printed on stderr
// as it was found, which a command's own error line must not repeat.
func Reported(err error) bool {
	_, ok := errors.AsType[reportedError](err)
	return ok
}

// nearestFlag is the flag of fs a mistyped name most likely meant: the
// same name in other case or with underscores (--EPOCHS, --weight_decay),
// the name other tools give it (--batch-size, PyTorch's), or the nearest
// by spelling.
func nearestFlag(fs *flag.FlagSet, name string) string {
	norm := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	if fs.Lookup(norm) != nil {
		return norm
	}
	if a, ok := flagAliases[norm]; ok && fs.Lookup(a) != nil {
		return a
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return Nearest(norm, names)
}

// flagAliases maps the names other tools (PyTorch's examples, timm, FFCV)
// give a setting to ours, for the did-you-mean of a flag not defined.
var flagAliases = map[string]string{
	"batch-size": "batch", "batchsize": "batch", "bs": "batch",
	"learning-rate": "lr", "learningrate": "lr",
	"output": "out", "output-dir": "out", "out-dir": "out", "outdir": "out", "output-path": "out", "o": "out",
	"ckpt": "checkpoint", "weights": "checkpoint",
	"num-workers": "workers", "j": "workers", "jobs": "workers",
	"wd": "weight-decay", "num-epochs": "epochs", "n-epochs": "epochs",
	"data": "shards", "data-dir": "shards", "dataset": "shards",
	"arch": "model", "a": "model",
}

// Nearest is the one of names a mistyped name most likely meant (a flag,
// a subcommand): the closest by edit distance, within 1 for names of 3
// or 4 letters and 2 for longer ones, when no other is as close; "" when
// none is, and for names of 1 or 2 letters, which are near anything.
func Nearest(name string, names []string) string {
	best, bestD, tie := "", 1<<30, false
	for _, n := range names {
		d := editDistance(name, n)
		switch {
		case d < bestD:
			best, bestD, tie = n, d, false
		case d == bestD:
			tie = true
		}
	}
	limit := 2
	switch n := len([]rune(name)); {
	case n <= 2:
		// One letter off a one-letter flag is any other (predict --o
		// would be "did you mean --k?"): no guess.
		return ""
	case n <= 4:
		limit = 1
	}
	if tie || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counting a
// swap of two neighbouring letters (epohcs for epochs) as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j]: distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
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
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.Is(err, errHelpNotWritten) {
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

// ParseFlags is Parse for commands that take flags only and return exit
// codes: when ok is false the command returns code at once (ExitOK after
// --help). A word among the flags is a usage error: the flag package stops
// at it, and every flag after it would be dropped in silence
// (`benchingest extra --rounds 1` ran the default rounds).
func ParseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := Parse(fs, args); err != nil {
		return ExitCode(err), false
	}
	return FlagsOnly(fs)
}

// FlagsOnly is ParseFlags' refusal of arguments left after parsing, for a
// command that parses with Parse because one of its modes takes some.
func FlagsOnly(fs *flag.FlagSet) (code int, ok bool) {
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q: it takes flags only (see --help)\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
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

// MaxWorkers bounds --workers (train, ingest, mkdemo): a zero too many
// (1,000,000) made train spend 76 s and 13.9 GB starting goroutines for
// a 12-step run, and no machine these commands run on has a use for more.
const MaxWorkers = 1024

// Given says whether the command line set the flag name (a default is
// not given, though it may equal what was).
func Given(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// BoolFlagBefore finds the true/false flag that an argument reading as a
// bool followed on the command line (`--bias-decay false`): Go's bool
// flags take no separate value, so the value became an argument of its
// own, which a command can then name rather than call stray.
func BoolFlagBefore(fs *flag.FlagSet, args []string, arg string) (string, bool) {
	if _, err := strconv.ParseBool(arg); err != nil {
		return "", false
	}
	for i := 1; i < len(args); i++ {
		if args[i] != arg {
			continue
		}
		name := strings.TrimLeft(args[i-1], "-")
		if f := fs.Lookup(name); f != nil && strings.HasPrefix(args[i-1], "-") {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				return name, true
			}
		}
	}
	return "", false
}

// StrayBoolValue names the mistake when one of a command's arguments pos
// is the value of a true/false flag given apart (`--strict true DIR`),
// and no file of that name is there: otherwise "true" would be taken for
// a dataset or an image, and the message would be about that.
func StrayBoolValue(fs *flag.FlagSet, args, pos []string) error {
	for _, p := range pos {
		name, ok := BoolFlagBefore(fs, args, p)
		if !ok {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		return fmt.Errorf("unexpected argument %q: --%s takes its value after =, as --%s=%s", p, name, name, p)
	}
	return nil
}
