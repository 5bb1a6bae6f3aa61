package main

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// checkCore says why --core cannot be pinned to, before any work: taskset
// alone says "failed to set pid's affinity: Invalid argument" once per
// round, after the tree is built, and the bench then times nothing.
func checkCore(core int) error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil // taskset will say what is wrong, if anything is
	}
	if core >= 0 && core < len(set)*64 && set.IsSet(core) {
		return nil
	}
	// As ranges, as taskset and /proc write them: a big machine has
	// hundreds.
	var allowed []string
	for c := 0; c < len(set)*64; c++ {
		if !set.IsSet(c) {
			continue
		}
		end := c
		for end+1 < len(set)*64 && set.IsSet(end+1) {
			end++
		}
		if end > c {
			allowed = append(allowed, fmt.Sprintf("%d-%d", c, end))
		} else {
			allowed = append(allowed, fmt.Sprint(c))
		}
		c = end
	}
	return fmt.Errorf("--core %d: this process may run on CPUs %s only", core, strings.Join(allowed, ","))
}
