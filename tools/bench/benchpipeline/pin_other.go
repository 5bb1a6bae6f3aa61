//go:build !linux

package main

import "errors"

func pinTo(int) (func(), error) { return func() {}, errors.New("pinning needs Linux") }
