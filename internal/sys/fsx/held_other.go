//go:build !unix

package fsx

import (
	"errors"
	"os"
)

func openDir(p string) (*os.File, error) { return os.Open(p) }

// No advisory locks here: HeldDirs are made, but none is ever taken for
// a dead run's.
func lockDir(*os.File) error   { return errors.New("no flock") }
func tryLockDir(*os.File) bool { return false }
func ownedByMe(*os.File) bool  { return false }
