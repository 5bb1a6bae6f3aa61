//go:build unix

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

// noFollow makes opening a lock file that is a symlink fail (ELOOP), and
// opening one that is a named pipe return at once (a plain read-only open
// of a pipe waits for a writer); regular then refuses the pipe.
const noFollow = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

func tryLock(f *os.File) (bool, error) { return flock(f, syscall.LOCK_EX) }

func tryLockShared(f *os.File) (bool, error) { return flock(f, syscall.LOCK_SH) }

func flock(f *os.File, how int) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP):
			// Some network filesystems have no flock; running unguarded
			// there is what every run did before the lock existed.
			return true, nil
		default:
			return false, err
		}
	}
}

func unlock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// readOnlyFS says whether err is a read-only file system's refusal.
func readOnlyFS(err error) bool { return errors.Is(err, syscall.EROFS) }
