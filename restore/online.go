package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/verify"
)

// stepPages is how many pages one backup step copies; ctx is checked
// between steps. The destination's write transaction stays open across
// steps, so other connections see the old content until the last step
// commits, then the new: never a mix.
const stepPages = 4096

// restorer is what modernc's driver connection offers for copying
// another database into it with the backup API.
type restorer interface {
	NewRestore(srcURI string) (*sqlite.Backup, error)
}

// online copies plain into the live target with the backup API. SQLite
// takes the target's write lock (waiting up to the busy timeout for the
// application's writers) and other connections, in this or any process,
// see the new content through SQLite's own change detection.
func online(ctx context.Context, plain, target string, opts Options) error {
	db, err := openTarget(target, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return targetError(ctx, target, "open", err, opts)
	}
	defer conn.Close()
	srcURI, err := sqlitefile.URI(plain, url.Values{"mode": {"ro"}, "immutable": {"1"}})
	if err != nil {
		return err
	}
	return conn.Raw(func(dc any) error {
		r, ok := dc.(restorer)
		if !ok {
			return errors.New("sqlite driver does not support the online backup API")
		}
		b, err := r.NewRestore(srcURI)
		if err != nil {
			return targetError(ctx, target, "start copy into", err, opts)
		}
		for {
			more, err := b.Step(stepPages)
			if err != nil {
				b.Finish() // rolls back the target's write transaction
				return fmt.Errorf("nothing was restored: %w", targetError(ctx, target, "copy into", err, opts))
			}
			if opts.Pages != nil {
				n := int64(b.PageCount())
				opts.Pages(n-int64(b.Remaining()), n)
			}
			if !more {
				break
			}
			if err := ctx.Err(); err != nil {
				b.Finish()
				return err
			}
		}
		if err := b.Finish(); err != nil {
			return targetError(ctx, target, "finish copy into", err, opts)
		}
		return nil
	})
}

// checkOnlinePageSize catches what SQLite would refuse mid-way: the
// backup API cannot change the page size of a WAL database.
func checkOnlinePageSize(tgt targetState, plain string, opts Options) error {
	if !tgt.wal {
		return nil
	}
	f, err := os.Open(plain)
	if err != nil {
		return fmt.Errorf("open backup %q: %w", plain, fsx.PathErr(err))
	}
	defer f.Close()
	h, err := sqlitefile.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("read backup %q: %w", plain, err)
	}
	if h.PageSize != tgt.pageSize {
		return hint.Wrap(fmt.Errorf("online restore impossible: the backup has %d-byte pages and the live WAL database %d-byte pages", h.PageSize, tgt.pageSize),
			"stop the application and restore offline (--offline)")
	}
	return nil
}

func openTarget(target string, opts Options) (*sql.DB, error) {
	uri, err := sqlitefile.URI(target, url.Values{
		"mode":    {"rw"}, // never create
		"_pragma": {"busy_timeout(" + strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10) + ")"},
	})
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", target, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// How the database in place was shown sound (Result.CheckedAs).
const (
	CheckedInPlace = "in place"
	CheckedRenamed = "renamed"
	CheckedCopied  = "copied"
)

// checkRestored runs integrity_check on the target as it now is, through
// SQLite's locking (the application may be using it), unless offline
// put the checked file itself, or a copy proven to hold its bytes, in
// place (CheckedAs set), and fills in the figures of the result.
func checkRestored(ctx context.Context, target string, res *Result, opts Options) error {
	db, err := openTarget(target, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	if res.CheckedAs == "" {
		problems, err := verify.Check(ctx, db, verify.Options{})
		if err != nil {
			return targetError(ctx, target, "check restored", err, opts)
		}
		if len(problems) > 0 {
			return &verify.FailedError{Result: verify.Result{Path: target, Check: "integrity_check", Problems: problems}}
		}
		res.CheckedAs = CheckedInPlace
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return targetError(ctx, target, "check restored", err, opts)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&res.PageSize); err != nil {
		return targetError(ctx, target, "check restored", err, opts)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&res.Pages); err != nil {
		return targetError(ctx, target, "check restored", err, opts)
	}
	res.JournalMode = mode
	res.Check = "integrity_check ok"
	res.Size = res.Pages * int64(res.PageSize)
	return nil
}

// targetError names the operation and the target, and turns SQLite's
// busy/locked into what an operator can act on.
func targetError(ctx context.Context, target, op string, err error, opts Options) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			who := ""
			if len(opts.holders) > 0 {
				who = "; open by " + HolderList(opts.holders)
			}
			return hint.Wrap(fmt.Errorf("%s %q: database is locked: the application held a write lock longer than the busy timeout (%s)%s", op, target, opts.BusyTimeout, who),
				"wait longer for the writer: --busy-timeout 2m, or stop the application and restore offline")
		case sqlite3.SQLITE_INTERRUPT:
			return context.Canceled
		}
	}
	return fmt.Errorf("%s %q: %w", op, target, err)
}
