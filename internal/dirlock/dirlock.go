// Package dirlock owns the advisory lock that keeps two runs of a command
// from writing into one output folder at once (two `train` runs sharing a
// checkpoint's temporary name, two `ingest` runs rewriting one shard).
//
// The lock is flock(2) on a file in the folder, so the kernel drops it when
// its process dies: a run killed with -9 leaves a file but never a lock,
// and the next run starts without anyone deleting anything.
package dirlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/regfile"
)

// File is the lock file's name inside the locked folder.
const File = ".lock"

// ErrBusy marks a folder another live process holds.
var ErrBusy = errors.New("in use by another run")

// Lock is a held lock; Release lets go of it.
type Lock struct {
	f *os.File
}

// Acquire takes dir's lock for what (a command name, for the message the
// other run gets), without waiting. When another process holds it the error
// wraps ErrBusy and names that process's pid and command.
func Acquire(dir, what string) (*Lock, error) {
	path := filepath.Join(dir, File)
	// noFollow: a .lock that is a symlink must not lead the truncate and
	// pid write below into whatever file it names.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|noFollow, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		// Another user's .lock (a reader made it, mode 0644): flock needs
		// no write access, only the owner's name goes unwritten. Where
		// there is none, the folder refused the new file: that is the
		// reason to give, not the read's "no such file".
		var rerr error
		if f, rerr = os.OpenFile(path, os.O_RDONLY|noFollow, 0); rerr == nil || !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}
	if err == nil {
		err = regular(f)
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if !held {
		owner := describeOwner(path)
		if shared, _ := tryLockShared(f); shared {
			// Readers hold it (AcquireShared), who write no name: the
			// file's is the last writer's, not theirs.
			unlock(f)
			owner = " (being read: a train run, train --eval-only, or shardtool verify or grid)"
		}
		f.Close()
		return nil, fmt.Errorf("%s is %w%s: wait for it to end, or use another folder", dir, ErrBusy, owner)
	}
	// Who holds it, for the message another run prints; the lock itself
	// is the flock, not these bytes.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), what)), 0)
	}
	return &Lock{f: f}, nil
}

// AcquireShared takes dir's lock as one of its readers: any number of
// them at once, and none while a writer (Acquire) holds it, so a run that
// reads a folder for hours (train over shards) and an ingest rewriting it
// refuse each other rather than the reader failing mid-run. In a folder
// this user cannot create the lock file in (read-only, another user's), a
// lock file already there still locks; with none there, the folder is
// read unguarded, and an ingest its owner starts meanwhile would not be
// refused. A folder that does not exist is left for the read to report.
// A lock file that is a symbolic link is refused, as Acquire refuses it.
//
// The lock file is created only in a folder that holds marker (a shard
// folder's meta.json): pointed at any other folder by mistake, a reader
// leaves nothing behind there, and the read names what is missing. A
// writer that has not yet written marker holds a lock file already, so
// its readers still wait for it.
func AcquireShared(dir, what, marker string) (*Lock, error) {
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if errors.Is(err, fs.ErrNotExist) && exists(filepath.Join(dir, marker)) {
		f, err = os.OpenFile(path, os.O_RDONLY|os.O_CREATE|noFollow, 0o644)
		if errors.Is(err, fs.ErrPermission) || readOnlyFS(err) {
			// Read unguarded: see above.
			err = fs.ErrNotExist
		}
	}
	// A file given for the folder is, like a missing folder, the read's
	// to report: "not a directory" about a lock file reads as a fault of
	// the lock.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return &Lock{}, nil
	}
	if err == nil {
		err = regular(f)
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s to read it: %w", dir, err)
	}
	held, err := tryLockShared(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s to read it: %w", dir, err)
	}
	if !held {
		owner := describeOwner(path)
		f.Close()
		return nil, fmt.Errorf("%s is %w%s, which is writing it: wait for it to end before %s reads it", dir, ErrBusy, owner, what)
	}
	return &Lock{f: f}, nil
}

// Probe reports, without creating or writing anything, whether another
// process holds dir's lock: an error wrapping ErrBusy (naming it) if so,
// nil if not, or if dir has no lock file or it cannot be opened.
func Probe(dir string) error {
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	held, err := tryLock(f)
	if err != nil || held {
		if held {
			unlock(f)
		}
		return nil
	}
	return fmt.Errorf("%s is %w%s: wait for it to end, or use another folder", dir, ErrBusy, describeOwner(path))
}

// regular refuses (and closes) a lock file that is not a regular file: a
// named pipe or a device put where the lock belongs.
func regular(f *os.File) error {
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is %s, not a lock file", f.Name(), cli.FileKind(fi.Mode()))
	}
	if err != nil {
		f.Close()
	}
	return err
}

// Release lets go of the lock. The file stays: removing it would let a
// third run lock a new file while a second still waits on the old one.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func describeOwner(path string) string {
	b, err := regfile.ReadFile(path, 4096)
	if err != nil {
		return ""
	}
	pid, what, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if _, err := strconv.Atoi(pid); !ok || err != nil || what == "" {
		return ""
	}
	return fmt.Sprintf(" (%s, pid %s)", what, pid)
}

// exists reports whether path names anything, a link included.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
