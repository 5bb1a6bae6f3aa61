package main

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinTo moves every thread of the process onto one CPU and returns a
// function that puts them back. Threads made later inherit the setting
// from the thread that makes them. On a shared VM the two vCPUs can run at
// very different speeds, and a one-core run that migrates between them
// measures the mix: pinning keeps a round's pipeline run and its ceilings
// on the same core, as bench-ingest does with taskset.
func pinTo(cpu int) (restore func(), err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return func() {}, err
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := setAffinity(&one); err != nil {
		_ = setAffinity(&old)
		return func() {}, err
	}
	return func() { _ = setAffinity(&old) }, nil
}

func setAffinity(set *unix.CPUSet) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// A thread may exit between the listing and the call.
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}
