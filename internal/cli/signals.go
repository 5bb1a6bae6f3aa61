package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// stopSignals are what a long run stops on, between steps, keeping its
// work: Ctrl-C, a scheduler's SIGTERM, and the SIGHUP of a closed terminal
// or a dropped ssh session.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// InterruptContext is the context of a long-running command (ingest,
// train). It is cancelled by the first of stopSignals, so the command
// stops at its next safe point and saves; a second one ends the process
// at once, as if nothing caught it, for a save that hangs.
//
// A SIGHUP or SIGINT the command was started with ignored stays ignored:
// nohup ignores SIGHUP so that the run outlives the terminal, and a
// background job of a script ignores SIGINT; catching them would undo
// that. (Go's runtime keeps no inherited ignore for other signals, so
// SIGTERM is always caught.)
//
// A closed pipe on stdout or stderr still ends the process by SIGPIPE, as
// it ends `cat` or `grep` under `| head`: right for a command whose
// output is its product (predict). A run with work to keep calls
// OutliveReaders too.
func InterruptContext() (context.Context, context.CancelFunc) {
	var caught []os.Signal
	for _, s := range stopSignals {
		if !signal.Ignored(s) {
			caught = append(caught, s)
		}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, caught...)
	go func() {
		select {
		case s := <-ch:
			signal.Reset(caught...)
			// The cause names the signal, for a message that says what
			// stopped the run rather than "context canceled".
			cancel(Stopped{s})
			// A second signal that came before the Reset is in ch, not
			// acted on: send it again, now to the default action.
			select {
			case s := <-ch:
				if p, err := os.FindProcess(os.Getpid()); err == nil {
					p.Signal(s)
				}
			default:
			}
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(nil)
	}
}

// Stopped is the cause of an InterruptContext's cancellation
// (context.Cause): the signal that came. It is context.Canceled to
// errors.Is, as the context's own error is.
type Stopped struct{ Signal os.Signal }

func (s Stopped) Error() string {
	switch s.Signal {
	case os.Interrupt:
		return "SIGINT, Ctrl-C"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP, the terminal closed"
	}
	return s.Signal.String()
}

func (s Stopped) Is(target error) bool { return target == context.Canceled }

// OutliveReaders ignores SIGPIPE for a run whose product is on disk
// (ingest's shards, train's checkpoints): a log piped into `tee` or
// `head` that has gone would otherwise kill it between two checkpoints
// without a word. The writes to the pipe fail instead, and the run goes
// on to its end.
func OutliveReaders() { signal.Ignore(syscall.SIGPIPE) }
