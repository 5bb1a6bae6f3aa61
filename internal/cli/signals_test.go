//go:build linux

package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The child half of TestInterruptContext: a stand-in for a long run.
func init() {
	if os.Getenv("CLI_SIGNAL_CHILD") == "" {
		return
	}
	ctx, stop := InterruptContext()
	defer stop()
	if os.Getenv("CLI_SIGNAL_CHILD") == "pipe" {
		OutliveReaders()
	}
	fmt.Println("ready")
	<-ctx.Done()
	fmt.Println("stopping") // saving, in a real run
	if m := os.Getenv("CLI_SIGNAL_CHILD"); m == "pipe" || m == "results" {
		// Its log's reader goes now: writes fail, and the run goes on
		// (pipe), or the process ends by SIGPIPE (results).
		for range 100 {
			fmt.Println("log line")
			time.Sleep(10 * time.Millisecond)
		}
		os.Exit(7)
	}
	time.Sleep(time.Minute) // a save that hangs
	os.Exit(0)
}

func TestInterruptContext(t *testing.T) {
	start := func(t *testing.T, mode string, under ...string) (*exec.Cmd, <-chan string, io.ReadCloser) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		if len(under) > 0 {
			// A shell sets the disposition the child inherits, as nohup does.
			cmd = exec.Command("/bin/sh", "-c", under[0]+`; exec "$0" "$@"`, os.Args[0], "-test.run", "^$")
		}
		cmd.Env = append(os.Environ(), "CLI_SIGNAL_CHILD="+mode)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		expectLine(t, lines, "ready")
		return cmd, lines, out
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, r, _ := start(t, "wait")
			cmd.Process.Signal(sig)
			expectLine(t, r, "stopping")
			// A second signal ends it at once, by that signal.
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != sig {
				t.Errorf("after a second %v: %v, want death by that signal", sig, err)
			}
		})
	}
	t.Run("ignored SIGHUP stays ignored", func(t *testing.T) {
		// As under nohup: the child inherits SIGHUP ignored.
		cmd, r, _ := start(t, "wait", `trap "" HUP`)
		cmd.Process.Signal(syscall.SIGHUP)
		select {
		case line := <-r:
			t.Fatalf("SIGHUP under nohup reached the run: it said %q", line)
		case <-time.After(300 * time.Millisecond):
		}
		cmd.Process.Signal(syscall.SIGTERM)
		expectLine(t, r, "stopping")
	})
	t.Run("closed log pipe", func(t *testing.T) {
		cmd, r, out := start(t, "pipe")
		cmd.Process.Signal(syscall.SIGTERM)
		expectLine(t, r, "stopping")
		out.Close() // the reader of its stdout goes
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Errorf("writing to a closed pipe: %v, want the run to go on to its exit 7", err)
		}
	})
	t.Run("closed results pipe", func(t *testing.T) {
		// Without OutliveReaders, as `predict | head`: the first write
		// after the reader goes ends the process quietly, by SIGPIPE.
		cmd, r, out := start(t, "results")
		cmd.Process.Signal(syscall.SIGTERM)
		expectLine(t, r, "stopping")
		out.Close()
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGPIPE {
			t.Errorf("writing to a closed pipe: %v, want death by SIGPIPE", err)
		}
	})
}

func expectLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	select {
	case line := <-lines:
		if line != want {
			t.Fatalf("child said %q, want %q", line, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("child did not say %q", want)
	}
}

// What stopped a run reads as its signal, and is still a cancellation.
func TestStopped(t *testing.T) {
	for _, tc := range []struct {
		sig  os.Signal
		want string
	}{{os.Interrupt, "SIGINT, Ctrl-C"}, {syscall.SIGTERM, "SIGTERM"}, {syscall.SIGHUP, "SIGHUP, the terminal closed"}} {
		err := error(Stopped{tc.sig})
		if err.Error() != tc.want || !errors.Is(err, context.Canceled) {
			t.Errorf("Stopped{%v}: %q, is Canceled %v", tc.sig, err, errors.Is(err, context.Canceled))
		}
	}
}
