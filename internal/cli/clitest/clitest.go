// Package clitest holds the checks the commands' tests share about how a
// command ends.
package clitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// JSONFailure checks that stdout holds exactly one JSON object, of a
// failed run under --json: with a non-empty "error" and an "exit_code"
// equal to code. It returns the object.
func JSONFailure(t testing.TB, stdout []byte, code int) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(stdout))
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("--json: stdout is not a JSON object (%v):\n%s", err, stdout)
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		t.Fatalf("--json: stdout holds more than one JSON document:\n%s", stdout)
	}
	msg, _ := obj["error"].(string)
	got, ok := obj["exit_code"].(float64)
	if msg == "" || !ok || int(got) != code {
		t.Fatalf("--json: want an error and exit_code %d, got error %q, exit_code %v:\n%s", code, msg, obj["exit_code"], stdout)
	}
	return obj
}
