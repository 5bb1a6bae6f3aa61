//go:build !unix

package dirlock

import "os"

const noFollow = 0

// Elsewhere the folder is not guarded: the commands run as before the lock.
func tryLock(*os.File) (bool, error) { return true, nil }

func tryLockShared(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) error { return nil }

func readOnlyFS(error) bool { return false }
