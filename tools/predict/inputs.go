package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

// stdin is where "-" reads its image; a test replaces it.
var stdin io.Reader = os.Stdin

// imageExts are the names a folder's files are taken by: what the
// decoder reads. A file given by name is tried whatever it is called.
var imageExts = map[string]bool{
	".jpeg": true, ".jpg": true, ".jfif": true, ".png": true, ".gif": true, ".bmp": true,
	".tif": true, ".tiff": true, ".webp": true,
}

// input is one image to classify, or an argument that gave none.
type input struct {
	path string
	err  error // set for a folder without images: reported as the file's failure
}

// expand turns the arguments into the images to classify: a file (or
// "-", standard input) as it is, a folder as the image files under it,
// in name order, without following links to folders. What a folder holds
// that is not an image by name is left out, counted in a note; hidden
// files (".DS_Store") silently.
func expand(args []string, stderr io.Writer) []input {
	var out []input
	for _, a := range args {
		fi, err := os.Stat(a)
		if a == "-" || err != nil || !fi.IsDir() {
			out = append(out, input{path: a}) // readImage says what is wrong
			continue
		}
		var found []input
		var others []string
		werr := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				found = append(found, input{path: p, err: err})
				return nil
			}
			name := d.Name()
			if p != a && strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if imageExts[strings.ToLower(filepath.Ext(name))] {
				found = append(found, input{path: p})
			} else {
				others = append(others, p)
			}
			return nil
		})
		if werr != nil {
			found = append(found, input{path: a, err: werr})
		}
		if len(others) > 0 {
			fmt.Fprintf(stderr, "predict: note: %s: left out %s not named as images (%s)\n", cli.Name(a),
				cli.Count(len(others), "entry", "entries"), cli.FirstFew(others, 5))
		}
		if len(found) == 0 {
			found = append(found, input{path: a, err: errors.New("a folder without image files (.jpeg, .jpg, .jfif, .png, .gif, .bmp, .tif, .tiff, .webp)")})
		}
		out = append(out, found...)
	}
	return out
}

// readStdin reads standard input whole, as readImage reads a file.
func readStdin() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(stdin, maxImageBytes+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) > maxImageBytes:
		return nil, fmt.Errorf("more than %d bytes: larger than any image", maxImageBytes)
	case len(b) == 0:
		return nil, errors.New("standard input is empty")
	}
	return b, nil
}
