//go:build !linux

package main

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncTree makes everything written under dir durable. Without syncfs(2)
// each file and folder is synced in turn: slower, and everywhere.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}
