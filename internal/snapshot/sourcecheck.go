package snapshot

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// checkTruncated reports a source that is shorter than its header says,
// when that can be judged (no -wal or hot -journal beside it). Without
// this check SQLite says "database disk image is malformed", which does
// not tell the operator what happened to the file.
func checkTruncated(src string, size int64, h sqlitefile.Header) error {
	if sqlitefile.HasJournal(src) {
		return nil
	}
	if err := sqlitefile.CheckSize(h, size); err != nil {
		return fmt.Errorf("open source %q: %w", src, err)
	}
	return nil
}

// readonlyDirError explains SQLITE_READONLY_DIRECTORY: a WAL database
// that no process has open has no -shm file, and SQLite cannot read it
// without creating one beside it, which a user who may not write to the
// directory cannot do. It returns nil for any other error.
func readonlyDirError(src, op string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_READONLY_DIRECTORY {
		return nil
	}
	owner := "the database's owner"
	if fi, err := os.Stat(src); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = strconv.Itoa(int(st.Uid))
			if u, err := user.LookupId(owner); err == nil {
				owner = u.Username
			}
		}
	}
	return hint.Wrap(fmt.Errorf("%s %q: it is a WAL database with no %s file, and SQLite must create one to read it, but this user may not write to %q",
		op, src, filepath.Base(src)+"-shm", filepath.Dir(src)),
		"run the backup as the database's owner: sudo -u %s sqlite-backup --source %s (or while the application has the database open)", hint.Quote(owner), hint.Quote(src))
}
