//go:build unix

package regfile

import "syscall"

// nonBlock makes opening a named pipe return at once, where a plain open
// waits for a writer; on a regular file it changes nothing.
const nonBlock = syscall.O_NONBLOCK
