// Package errs owns one small error shape the packages share: an error
// whose message says everything, marked with a sentinel for errors.Is
// without the sentinel's text repeating in it.
package errs

// Mark returns err, reading exactly as err, that errors.Is also finds
// mark in.
func Mark(err, mark error) error { return marked{err, mark} }

type marked struct{ err, mark error }

func (e marked) Error() string   { return e.err.Error() }
func (e marked) Unwrap() []error { return []error{e.err, e.mark} }
