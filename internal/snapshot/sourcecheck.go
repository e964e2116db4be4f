package snapshot

import (
	"context"
	"database/sql"
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

// A source shorter than its header says is reported as "truncated: …"
// instead of SQLite's "database disk image is malformed", which does not
// tell the operator what happened to the file. The header and the size
// are judged only where they cannot be caught in mid-write: a writer in
// journal_mode=MEMORY or OFF leaves no journal beside the file while it
// extends it (page 1, with the new page count, is written before the new
// pages), so a reading taken without SQLite's lock would now and then
// call a sound database truncated and fail the night's backup.

// truncatedUnderLock judges the source's size inside the read
// transaction open on conn: in a rollback-journal mode its SHARED lock
// keeps every writer out of the file, whatever journal lies beside it.
// In WAL mode the file need not match its header (the WAL holds the
// rest), and the file copy's plan compares it with SQLite's page count.
// damage is the error for a truncated file; err one of SQLite's.
func truncatedUnderLock(ctx context.Context, conn *sql.Conn, files *sourceFiles) (damage, err error) {
	if files == nil || files.db == nil || !samePath(files.db, files.path) {
		return nil, nil // SQLite reads a file we do not have open: its own checks stand
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	if mode == "wal" {
		return nil, nil
	}
	h, err := sqlitefile.ReadHeader(files.db)
	if err != nil {
		return truncatedError(files.path, err), nil
	}
	fi, err := files.db.Stat()
	if err != nil {
		return nil, err
	}
	return truncatedError(files.path, sqlitefile.CheckSize(h, fi.Size())), nil
}

// truncatedBeforeVacuum is truncatedUnderLock in a read transaction of
// its own: VACUUM INTO cannot run inside one.
func truncatedBeforeVacuum(ctx context.Context, conn *sql.Conn, files *sourceFiles) (damage, err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, err
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return nil, err
	}
	return truncatedUnderLock(ctx, conn, files)
}

// truncatedAfterFailure names a truncated source once SQLite itself has
// refused it as corrupt (it does so when the header counts more pages
// than the file holds): the reading, taken without a lock, only chooses
// the message for a failure that stands anyway. It returns nil when the
// file does not look truncated, or when a WAL with frames may hold what
// the file lacks.
func truncatedAfterFailure(src string, files *sourceFiles, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) || (se.Code()&0xff != sqlite3.SQLITE_CORRUPT && se.Code()&0xff != sqlite3.SQLITE_NOTADB) {
		return nil
	}
	if fi, err := os.Stat(src + "-wal"); err == nil && fi.Size() > 0 {
		return nil
	}
	if files == nil || files.db == nil {
		return nil
	}
	f := files.db
	// The header before the size: a file that grows in between then
	// looks whole, not truncated.
	h, herr := sqlitefile.ReadHeader(f)
	fi, serr := f.Stat()
	if herr != nil || serr != nil {
		return nil
	}
	return truncatedError(src, sqlitefile.CheckSize(h, fi.Size()))
}

// truncatedError is what CheckSize's complaint about src says to the
// operator, or nil without one.
func truncatedError(src string, err error) error {
	if err == nil {
		return nil
	}
	return hint.Wrap(fmt.Errorf("open source %q: %w", src, err),
		"the source is damaged; restore it from a backup (sqlite-backup verify FILE checks one)")
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
