// Package testdata locates the data that tests share but the repository
// must not contain: the real ImageNet sample and Fashion-MNIST. Tests that
// need them skip, saying what is missing, so a user's clone still passes.
package testdata

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// RepoRoot is the directory holding go.mod, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ImageNetSampleDir is where the 200 real ImageNet JPEGs live when the
// shared folder is present: $IMAGENET_SAMPLE, else ../shared/data/imagenet-sample
// beside the repository.
func ImageNetSampleDir() string {
	if d := os.Getenv("IMAGENET_SAMPLE"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared", "data", "imagenet-sample")
}

// ImageNetSample returns the sorted paths of the sample JPEGs, or skips t.
func ImageNetSample(t testing.TB) []string {
	t.Helper()
	dir := ImageNetSampleDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("real ImageNet sample not available (%v); set IMAGENET_SAMPLE to run this test", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".JPEG") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Skipf("no .JPEG files in %s", dir)
	}
	sort.Strings(out)
	return out
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist puts its files.
func FashionMNISTDir() string {
	if d := os.Getenv("FASHION_MNIST"); d != "" {
		return d
	}
	return "/usr/share/datasets/fashion-mnist"
}

// FashionMNIST returns the dataset directory or skips t.
func FashionMNIST(t testing.TB) string {
	t.Helper()
	d := FashionMNISTDir()
	if _, err := os.Stat(filepath.Join(d, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not installed (%v): run `just setup` (Debian package dataset-fashion-mnist)", err)
	}
	return d
}
