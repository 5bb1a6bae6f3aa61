package errs

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestMark(t *testing.T) {
	sentinel := errors.New("the sentinel's own text")
	err := Mark(fmt.Errorf("what happened: %w", fs.ErrNotExist), sentinel)
	if err.Error() != "what happened: file does not exist" {
		t.Errorf("message %q", err)
	}
	if !errors.Is(err, sentinel) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is finds neither the mark nor the cause in %v", err)
	}
}
