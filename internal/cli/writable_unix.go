//go:build unix

package cli

import "syscall"

// writableDir says why files cannot be made in dir, or nil: access(2),
// which asks the kernel without making anything (a read-only mount, no
// write or search permission). Root passes every permission check.
func writableDir(dir string) error {
	const wOK, xOK = 2, 1
	return syscall.Access(dir, wOK|xOK)
}
