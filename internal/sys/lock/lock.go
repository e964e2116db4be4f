// Package lock keeps two runs of sqlite-backup from working in the same
// backup directory at once. The lock is an flock on a file in the
// directory, so it is released by the kernel when a run dies, even by
// SIGKILL, and leftovers of a killed run can be cleaned up safely by
// whoever holds it next.
package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sqlite-backup/internal/output/hint"
)

// Name is the lock file in a backup directory.
const Name = ".sqlite-backup.lock"

// Lock is a held directory lock.
type Lock struct {
	f    *os.File
	Path string
}

// ErrBusy is wrapped by the error Acquire returns when another run holds
// the lock past the timeout.
var ErrBusy = errors.New("locked by another sqlite-backup run")

// Acquire takes the lock of dir, waiting up to timeout (0: fail at once).
func Acquire(ctx context.Context, dir string, timeout time.Duration) (*Lock, error) {
	p := filepath.Join(dir, Name)
	f, err := openLockFile(p)
	if err != nil {
		// The path is in the message already: not twice.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("open lock %q: %w", p, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", p, err)
		}
		if ok {
			break
		}
		if !time.Now().Before(deadline) {
			holder := readPID(f)
			f.Close()
			return nil, hint.Wrap(fmt.Errorf("backup dir %q is %w%s", dir, ErrBusy, holder),
				"wait for it to finish, or let this run wait: --lock-timeout 10m")
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Record the holder for the message a blocked run prints.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, Path: p}, nil
}

// Release gives the lock up. The file stays: removing it would race with
// a run that has just opened it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func readPID(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil || pid == "" {
		return ""
	}
	return " (pid " + pid + ")"
}
