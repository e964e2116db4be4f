//go:build !unix

package lock

import "os"

func openLockFile(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
}

// tryLock: no advisory locks here; runs are not serialised.
func tryLock(*os.File) (bool, error) { return true, nil }
