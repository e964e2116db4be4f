package snapshot

import (
	"errors"
	"fmt"
	"syscall"

	"sqlite-backup/internal/output/hint"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// destWriteError recognises an error of writing the copy. The source is
// opened read-only, so SQLITE_FULL and a write/fsync/truncate I/O error
// during the copy can only come from the destination: blaming the source
// ("copy source …: disk I/O error") would send the operator to the wrong
// disk. It returns nil for any other error.
func destWriteError(err error, dir string) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	var what string
	switch se.Code() {
	case sqlite3.SQLITE_FULL:
		what = "no space left on the destination (SQLITE_FULL)"
	case sqlite3.SQLITE_IOERR_WRITE:
		what = "write error on the destination: disk full, quota, file size limit or I/O error (SQLITE_IOERR_WRITE)"
	case sqlite3.SQLITE_IOERR_FSYNC, sqlite3.SQLITE_IOERR_DIR_FSYNC:
		what = "fsync error on the destination (SQLITE_IOERR_FSYNC)"
	case sqlite3.SQLITE_IOERR_TRUNCATE:
		what = "truncate error on the destination (SQLITE_IOERR_TRUNCATE)"
	default:
		return nil
	}
	return writeFailed(dir, what)
}

// fileWriteError is destWriteError for the copy written by this program
// itself (the file copy), whose errors are the system's, not SQLite's.
func fileWriteError(err error, dir string) error {
	var what string
	switch {
	case errors.Is(err, syscall.ENOSPC):
		what = "no space left on the destination (ENOSPC)"
	case errors.Is(err, syscall.EDQUOT):
		what = "disk quota exceeded on the destination (EDQUOT)"
	case errors.Is(err, syscall.EFBIG):
		what = "file too large for the destination (EFBIG)"
	default:
		what = fmt.Sprintf("write error on the destination: %v", err)
	}
	return writeFailed(dir, what)
}

// noSpace reports the errors of a destination that is full.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

func writeFailed(dir, what string) error {
	if cause := writeCause(); cause != "" {
		what += ": " + cause
	}
	return hint.Wrap(fmt.Errorf("write backup in %q: %s; the partial copy was removed", dir, what),
		"free space there, or write elsewhere: sqlite-backup --backup-dir /other/disk")
}
