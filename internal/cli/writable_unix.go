//go:build unix

package cli

import "syscall"

// WritableDir says why files cannot be made in dir, or nil: access(2),
// which asks the kernel without making anything (a read-only mount, no
// write or search permission). Root passes every permission check.
func WritableDir(dir string) error {
	const wOK, xOK = 2, 1
	return syscall.Access(dir, wOK|xOK)
}
