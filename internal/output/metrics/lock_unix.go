//go:build unix

package metrics

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockDir takes an flock on the directory itself, so that no lock file
// is left among the collector's files. It waits: the critical section is
// one small read and write.
func lockDir(dir string) (func(), error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		d.Close()
		return nil, err
	}
	return func() { d.Close() }, nil
}
