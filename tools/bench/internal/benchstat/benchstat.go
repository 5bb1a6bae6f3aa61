// Package benchstat holds what the bench commands share in how they
// measure: the median they report, the process's CPU time (on a shared
// machine a steadier yardstick than the wall clock), and how they run
// their Python references.
package benchstat

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Median is the middle value of v (the mean of the middle two when even),
// 0 for none.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// CPUTime is the process's user + system CPU time so far, every thread
// included; 0 where getrusage fails.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PythonCannotImport says why python cannot import every one of modules
// (Python's last line of complaint, or the exec error), or "" when it can:
// the bench references check this before they run.
func PythonCannotImport(python string, modules ...string) string {
	out, err := exec.Command(python, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err == nil {
		return ""
	}
	msg := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = err.Error()
	}
	return msg
}

// RunJSON runs a reference script under python and decodes the one JSON
// value it prints into v. A failure names the script and carries its
// standard error; unreadable output is quoted.
func RunJSON(python string, args []string, v any) error {
	cmd := exec.Command(python, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	name := python
	if len(args) > 0 {
		name = filepath.Base(args[0])
	}
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: unreadable result %q (%v)", name, strings.TrimSpace(string(out)), err)
	}
	return nil
}
