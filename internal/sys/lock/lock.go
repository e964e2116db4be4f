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

// OffsiteName is the lock a run holds while it sends a backup
// directory's backups to its remotes: one run at a time does, so what a
// run finds half-uploaded under its own backups' names is provably a dead
// run's, and another run's upload is never taken for one. The directory
// lock (Name) is not held meanwhile: a slow upload does not hold up the
// next local backup.
const OffsiteName = ".sqlite-backup-offsite.lock"

// Acquire takes the lock of dir, waiting up to timeout (0: fail at once).
func Acquire(ctx context.Context, dir string, timeout time.Duration) (*Lock, error) {
	return acquire(ctx, dir, Name, timeout, func(holder string) error {
		return hint.Wrap(fmt.Errorf("backup dir %q is %w%s", dir, ErrBusy, holder),
			"wait for it to finish, or let this run wait: --lock-timeout 10m")
	})
}

// AcquireOffsite takes dir's off-site lock (OffsiteName), waiting up to
// timeout (0: fail at once).
func AcquireOffsite(ctx context.Context, dir string, timeout time.Duration) (*Lock, error) {
	return acquire(ctx, dir, OffsiteName, timeout, func(holder string) error {
		return hint.Wrap(busyError(fmt.Sprintf("the backups in %q are being sent off-site by another sqlite-backup run%s", dir, holder)),
			"this run's backup goes with the next run; to wait for the other run instead: --lock-timeout 1h")
	})
}

// busyError is a busy lock said in its own words; it is ErrBusy.
type busyError string

func (e busyError) Error() string        { return string(e) }
func (e busyError) Is(target error) bool { return target == ErrBusy }

func acquire(ctx context.Context, dir, name string, timeout time.Duration, busy func(holder string) error) (*Lock, error) {
	p := filepath.Join(dir, name)
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
			return nil, busy(holder)
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
