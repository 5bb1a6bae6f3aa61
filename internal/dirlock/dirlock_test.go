//go:build unix

package dirlock

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/fixtures"
)

func TestAcquireExcludes(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file, so a second open in this
	// process contends exactly as another process would.
	_, err = Acquire(dir, "train")
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire: %v, want ErrBusy", err)
	}
	want := "(train, pid " + itoa(os.Getpid()) + ")"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Errorf("message %q does not name %s and %q", err, dir, want)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(dir, "ingest")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	defer b.Release()
	if err := a.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

// Readers share a folder; a writer excludes them and they it, each
// refusal naming what holds the folder.
func TestSharedReaders(t *testing.T) {
	dir := t.TempDir()
	writeMarker(t, dir)
	r1, err := AcquireShared(dir, "train", marker)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := AcquireShared(dir, "shardtool verify", marker)
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	_, err = Acquire(dir, "ingest")
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "being read") {
		t.Fatalf("a writer while two read: %v, want ErrBusy saying it is being read", err)
	}
	r1.Release()
	if _, err := Acquire(dir, "ingest"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a writer while one reads: %v, want ErrBusy", err)
	}
	r2.Release()
	w, err := Acquire(dir, "ingest")
	if err != nil {
		t.Fatalf("a writer once the readers are gone: %v", err)
	}
	_, err = AcquireShared(dir, "train", marker)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "(ingest, pid "+itoa(os.Getpid())+"), which is writing it") {
		t.Fatalf("a reader while ingest writes: %v", err)
	}
	w.Release()
	// A folder the lock file cannot be made in is read unguarded.
	ro := filepath.Join(t.TempDir(), "absent", "shards")
	l, err := AcquireShared(ro, "train", marker)
	if err != nil || l.Release() != nil {
		t.Fatalf("a folder without a lock file to make: %v", err)
	}
}

// A lock file the user cannot write (another user's reader made it) still
// locks: flock needs no write access. Permissions do not bind root, so
// root runs it as another user.
func TestReadOnlyLockFileStillLocks(t *testing.T) {
	if !fixtures.Unprivileged(t) {
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, File), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	w, err := Acquire(dir, "ingest")
	if err != nil {
		t.Fatalf("a read-only lock file: %v", err)
	}
	if _, err := AcquireShared(dir, "train", marker); !errors.Is(err, ErrBusy) {
		t.Fatalf("a reader while the writer holds the read-only file: %v, want ErrBusy", err)
	}
	w.Release()
}

// A folder the user cannot write in, with no lock file yet: the error is
// the folder's refusal, not the read-only retry's "no such file". Root
// runs this as another user.
func TestUnwritableFolderSaysPermission(t *testing.T) {
	if !fixtures.Unprivileged(t) {
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if _, err := Acquire(dir, "train"); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Acquire in a read-only folder: %v, want permission denied", err)
	}
}

// TestKilledHolderFreesLock: a run killed with -9 must not leave the folder
// locked, or every kill would need a person to delete a file.
func TestKilledHolderFreesLock(t *testing.T) {
	if os.Getenv("DIRLOCK_HOLD") != "" {
		if _, err := Acquire(os.Getenv("DIRLOCK_HOLD"), "holder"); err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("held\n")
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledHolderFreesLock$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "held\n" {
		cmd.Process.Kill()
		t.Fatalf("holder said %q", line)
	}
	_, err = Acquire(dir, "train")
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "(holder, pid "+itoa(cmd.Process.Pid)+")") {
		t.Errorf("while another process holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir, "train")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}

func TestAcquireMissingDir(t *testing.T) {
	_, err := Acquire(t.TempDir()+"/absent", "train")
	if err == nil || errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want an open error", err)
	}
}

// A reader given a missing folder, or a file for the folder, holds no lock
// and leaves the error to its read, which names what the path is; the
// lock's own "not a directory" named the wrong fault.
func TestAcquireSharedNotAFolder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "meta.json")
	if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{t.TempDir() + "/absent", file} {
		l, err := AcquireShared(dir, "verify", marker)
		if err != nil {
			t.Fatalf("%s: %v, want no lock and no error", dir, err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// marker stands for a shard folder's meta.json.
const marker = "meta.json"

func writeMarker(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, marker), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A reader pointed at a folder that is not what it reads (no marker)
// leaves no lock file there; one where a writer has begun, its marker not
// yet written, still waits for that writer.
func TestAcquireSharedLeavesOtherFoldersAlone(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireShared(dir, "verify", marker)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if _, err := os.Lstat(filepath.Join(dir, File)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a reader left %s in a folder without %s (%v)", File, marker, err)
	}
	w, err := Acquire(dir, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireShared(dir, "train", marker); !errors.Is(err, ErrBusy) {
		t.Fatalf("a reader while a writer holds a folder without %s yet: %v, want ErrBusy", marker, err)
	}
	w.Release()
	other := t.TempDir()
	writeMarker(t, other)
	l, err = AcquireShared(other, "verify", marker)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := os.Lstat(filepath.Join(other, File)); err != nil {
		t.Fatalf("a reader of a folder with %s made no lock file: %v", marker, err)
	}
	// A shard folder this user cannot write in (another user's, a
	// read-only copy) is read unguarded, as before.
	if os.Geteuid() == 0 {
		t.Log("running as root, whom no permission stops: the read-only folder is not checked")
		return
	}
	ro := t.TempDir()
	writeMarker(t, ro)
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	l2, err := AcquireShared(ro, "verify", marker)
	if err != nil {
		t.Fatalf("a read-only shard folder: %v, want it read unguarded", err)
	}
	l2.Release()
}

// TestSymlinkLockFileRefused: a .lock that is a symlink must not have the
// file it points at truncated and overwritten with the holder's pid.
func TestSymlinkLockFileRefused(t *testing.T) {
	dir := t.TempDir()
	victim := dir + "/victim"
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, dir+"/"+File); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir, "train")
	if err == nil {
		l.Release()
		t.Errorf("Acquire through a symlinked %s succeeded", File)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target now holds %q", b)
	}
	// A reader is refused too, not let in unguarded: a writer could not
	// lock the folder either.
	if l, err := AcquireShared(dir, "train", marker); err == nil || !strings.Contains(err.Error(), "locking "+dir+" to read it") {
		l.Release()
		t.Errorf("AcquireShared through a symlinked %s: %v, want it refused", File, err)
	}
}

// Probe tells a held lock from a free or absent one, and writes nothing.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	if err := Probe(dir); err != nil {
		t.Fatalf("no lock file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, File)); !os.IsNotExist(err) {
		t.Fatalf("Probe created the lock file: %v", err)
	}
	l, err := Acquire(dir, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, File))
	if err := Probe(dir); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "(ingest, pid") {
		t.Fatalf("held lock: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, File)); string(after) != string(before) {
		t.Fatal("Probe rewrote the lock file")
	}
	l.Release()
	if err := Probe(dir); err != nil {
		t.Fatalf("released lock: %v", err)
	}
	// Probing leaves the lock free for the next run.
	l2, err := Acquire(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}
