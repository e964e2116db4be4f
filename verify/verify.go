// Package verify decides whether a file is a sound SQLite database. It
// looks at the file's bytes first (empty, truncated, not SQLite at all),
// then asks SQLite's own integrity_check or quick_check. It opens files
// read-only and, where the file stands alone, immutable, so checking a
// backup never writes a byte or creates a -wal/-shm beside it; a file
// that changes during such a check gets no verdict, and another
// process's lock is an error, not a verdict.
package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fault"

	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/remote"
)

// Options tune a check.
type Options struct {
	// Quick runs PRAGMA quick_check instead of the full integrity_check:
	// it skips index-content cross checks and is several times faster.
	Quick bool
	// MaxProblems caps how many problems are collected (default 10).
	MaxProblems int
	// TempDir is where a compressed backup is decompressed for the check
	// (default os.TempDir()); the temp file is removed afterwards.
	TempDir string
	// KeepDecompressed leaves the decompressed copy of a compressed file
	// in TempDir and names it in Result.Decompressed, for a caller that
	// goes on to use it (restore) instead of decompressing again. The
	// caller removes it.
	KeepDecompressed bool
	// Fetched says the file is a download that remote.Fetch already
	// hashed as it wrote it and found equal to its .sha256 sidecar: the
	// sidecar is then not checked a second time by reading the file
	// again (SHA256 is "ok").
	Fetched bool
	// Deep recomputes row counts and the content hash and compares them
	// with the backup's manifest (<file>.json).
	Deep bool
	// DeepOf, with Deep, is the backup whose manifest (<DeepOf>.json)
	// holds the content to compare, when the file checked is not that
	// backup but the database it holds (a point of an incremental chain
	// materialized into a temp file).
	DeepOf string
	// Identities open encrypted (age) backups; without them only the
	// sidecar hash and the age header of such a file are checked.
	Identities []age.Identity
	// BusyTimeout is how long the check of a database in use (one with a
	// journal or a -shm beside it, read through SQLite's locks) waits
	// for another process's lock; 0 fails at once.
	BusyTimeout time.Duration
	// Progress, if set, is called a few times a second with an estimate
	// of the pages read so far (File only), and with finished set once
	// the check is over. integrity_check reads every page early and then
	// spends a long while cross-checking index entries, so done may
	// reach total well before finished.
	Progress func(done, total int64, finished bool)
	// Remote reaches a backup given as URL/NAME (File downloads it with
	// its sidecars into a private directory in TempDir, checks that
	// copy and removes it); FetchProgress follows the download.
	Remote        remote.Options
	FetchProgress func(done, total int64)
}

// Result is the verdict on one file.
type Result struct {
	Path     string   `json:"path"`
	OK       bool     `json:"ok"`
	Check    string   `json:"check"` // "integrity_check" or "quick_check"
	Problems []string `json:"problems,omitempty"`
	Size     int64    `json:"size"`
	PageSize int      `json:"page_size,omitempty"`
	Pages    int64    `json:"pages,omitempty"`
	// SHA256 is "ok" or "mismatch" when a <file>.sha256 sidecar exists.
	SHA256 string `json:"sha256,omitempty"`
	// Sum, with SHA256 "ok", is the SHA-256 the file was proven to have:
	// its sidecar's, as read when the check began. A caller that goes on
	// to use the file (restore copies it) compares with this, not with
	// the sidecar read again, which may have been rewritten since.
	Sum string `json:"-"`
	// Compression is "zstd" or "gzip" for a compressed backup, checked
	// through a decompressed temp copy of Uncompressed bytes.
	Compression  string `json:"compression,omitempty"`
	Uncompressed int64  `json:"uncompressed_size,omitempty"`
	// Chain names the files a point of an incremental chain was
	// materialized from to be checked: its full, then each increment.
	Chain []string `json:"chain,omitempty"`
	// Content is "ok" when --deep found the manifest's rows and hash.
	Content string `json:"content,omitempty"`
	// Encryption is "age" for an encrypted backup, checked through a
	// decrypted temp copy when Options.Identities open it.
	Encryption string `json:"encryption,omitempty"`
	// Note is what the verdict alone does not say: a file named .age
	// that is not encrypted.
	Note string `json:"note,omitempty"`
	// ContentChecked, set for an encrypted backup only, says whether the
	// database inside was checked: false without an identity.
	ContentChecked *bool `json:"content_checked,omitempty"`
	// NotChecked says why the database itself was not checked (an
	// encrypted backup without an identity): the file has no verdict, OK
	// is false, and no problem was found in what could be read (the
	// sidecar hash, the age header).
	NotChecked string `json:"-"`
	// Decompressed is the kept decompressed copy (KeepDecompressed, and
	// only when the file passed).
	Decompressed string `json:"-"`
	// Threads is how many connections the SQLite check ran on: more than
	// one for a full check split by parallelPlan.
	Threads int `json:"-"`
	// Replica, set when the file was a point of a Litestream replica,
	// says which point and from which files it was built.
	Replica *Replica `json:"replica,omitempty"`
	// held is the private directory of Decompressed (RemoveDecompressed).
	held *fsx.HeldDir
}

// Replica is a point of another tool's replica that was read, built
// into a database and checked.
type Replica struct {
	Kind string    `json:"kind"` // "litestream"
	TXID string    `json:"txid"` // the point, 16 hex digits as Litestream writes it
	Time time.Time `json:"time"` // when Litestream stamped the point's last file
	// Files are the replica's files the point was built from, in order.
	Files []string `json:"files"`
	// StateChecksum is "ok" when the files carry Litestream's post-apply
	// checksum and the database built adds up to it.
	StateChecksum string `json:"state_checksum,omitempty"`
}

// Summary is the first problems on one line, for "FILE: FAILED: …".
func (r Result) Summary() string {
	const shown = 3
	p := r.Problems
	more := ""
	if len(p) > shown {
		more = fmt.Sprintf(" (and %d more)", len(p)-shown)
		p = p[:shown]
	}
	return strings.Join(p, "; ") + more
}

// FailedError is returned by callers that turn a failed Result into an
// error; the CLI maps it to exit code 3.
type FailedError struct{ Result Result }

func (e *FailedError) Error() string {
	return fmt.Sprintf("verify %q: FAILED: %s", e.Result.Path, e.Result.Summary())
}

// checkDB checks one uncompressed database file. deep, if set, runs on
// the open database after a clean integrity check.
func checkDB(ctx context.Context, path string, opts Options, deep func(*sql.DB) ([]string, error)) (Result, error) {
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 10
	}
	res := Result{Path: path, Check: "integrity_check"}
	if opts.Quick {
		res.Check = "quick_check"
	}
	fail := func(format string, a ...any) (Result, error) {
		res.Problems = append(res.Problems, fmt.Sprintf(format, a...))
		return res, nil
	}

	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("verify %q: %w", path, fsx.PathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file (%s)", describeMode(fi.Mode()))
	}
	res.Size = fi.Size()
	if db, ok := sqlitefile.SidecarOf(path); ok {
		if _, err := os.Stat(db); err == nil {
			return fail("this is SQLite's %s file of %q, not a database", path[len(db):], db)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("verify %q: %w", path, fsx.PathErr(err))
	}
	h, herr := sqlitefile.ReadHeader(f)
	f.Close()
	switch {
	case res.Size == 0:
		return fail("empty file (0 bytes), not a SQLite database")
	case herr != nil:
		return fail("%v", herr)
	}
	res.PageSize = h.PageSize
	res.Pages = res.Size / int64(h.PageSize)

	// SQLite follows symbolic links and keeps -wal, -shm and -journal
	// beside the file they name: whether the file stands alone is judged
	// there, never beside a link (where stale sidecars may lie, or none
	// where the real file has a WAL that an immutable open would ignore).
	real := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}

	// The size can be judged unless a -wal or hot journal holds part of
	// the content. A file standing alone (not even a -shm: nobody has it
	// open) is opened immutable, so nothing is created beside it.
	if !sqlitefile.HasJournal(real) {
		if err := sqlitefile.CheckSize(h, res.Size); err != nil {
			if changedSince(real, fi, h) {
				return res, changedError(path)
			}
			return fail("%v", err)
		}
	}
	standalone := !sqlitefile.HasJournal(real) && !exists(real+"-shm")

	params := url.Values{"mode": {"ro"}, "_pragma": {mmapPragma}}
	if standalone {
		params.Set("immutable", "1")
	} else {
		params.Add("_pragma", "busy_timeout("+strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)+")")
	}
	uri, err := sqlitefile.URI(path, params)
	if err != nil {
		return res, fmt.Errorf("verify %q: %w", path, err)
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return res, fmt.Errorf("verify %q: %w", path, err)
	}
	db.SetMaxOpenConns(1)

	// A full check of a file that stands alone runs on every core where
	// SQL can say the same as integrity_check (see parallelPlan); not
	// with progress, whose estimate watches one connection's map.
	var plan *parallelPlan
	workers := runtime.GOMAXPROCS(0)
	if !opts.Quick && standalone && opts.Progress == nil && workers >= 2 && res.Size >= parallelMinSize {
		plan, err = planParallel(ctx, db, opts.MaxProblems)
		if errors.Is(err, fault.ErrFault) {
			return res, fmt.Errorf("verify %q: %w", path, err)
		}
		if err != nil {
			plan = nil // SQLite's own check gives the verdict
		}
	}

	// The progress estimate counts the pages the check faults in, so a
	// prefaulted map would read as done at once: progress (a TTY) keeps
	// the faults. Only an immutable connection keeps one map throughout.
	stopPrefault := func() {}
	if opts.Progress == nil && standalone && plan == nil {
		if stopPrefault, err = prefault(ctx, db, path); err != nil {
			return res, fmt.Errorf("verify %q: %w", path, err)
		}
		// Also on a panic out of Check; the connection is then never
		// closed, so nothing unmaps under the toucher before this runs.
		defer stopPrefault()
	}
	stopProgress := watchProgress(opts.Progress, h.PageSize, res.Pages)
	var problems []string
	res.Threads = 1
	if plan != nil {
		res.Threads = min(workers, len(plan.queries))
		problems, err = plan.run(ctx, db, workers, opts.MaxProblems)
	} else if standalone && opts.Progress == nil && workers >= 2 {
		problems, res.Threads, err = checkBeside(ctx, db, opts)
	} else {
		problems, err = Check(ctx, db, opts)
	}
	stopProgress(err == nil)
	stopPrefault() // it reads SQLite's map: before the connection closes
	if standalone && changedSince(real, fi, h) {
		if !errors.Is(err, fault.ErrFault) { // after a fault: dropped unused
			db.Close()
		}
		return res, changedError(path)
	}
	if errors.Is(err, fault.ErrFault) {
		// SQLite was interrupted inside a read: drop the handle unused.
		return res, fmt.Errorf("verify %q: %w", path, err)
	}
	defer db.Close()
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		// Another process's lock, or a write that a read-only check never
		// makes (a hot journal to roll back, a -shm to create): no verdict.
		switch code := sqliteCode(err); {
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
			return res, hint.Wrap(fmt.Errorf("verify %q: database is locked: another process held a lock longer than the busy timeout (%s)", path, opts.BusyTimeout),
				"wait longer: sqlite-backup verify --busy-timeout 2m %s; or check a backup of it: %s", hint.Quote(path), backupExample(path))
		case code == sqlite3.SQLITE_READONLY_ROLLBACK:
			return res, hint.Wrap(fmt.Errorf("verify %q: a writer stopped in mid-transaction; its journal %q must be rolled back before the file can be judged (SQLite: %w)", path, real+"-journal", err),
				"do not delete the journal: it holds what the file needs. Open the database once with the application, or as its owner run: sqlite3 %s \"PRAGMA quick_check\" (either rolls it back); then: sqlite-backup verify %s", hint.Quote(path), hint.Quote(path))
		case code&0xff == sqlite3.SQLITE_READONLY:
			return res, hint.Wrap(fmt.Errorf("verify %q: reading it needs a write beside it that a read-only check does not make (SQLite: %w)", path, err),
				"run verify as a user who may write in %s, or check a backup of it: %s", hint.Quote(filepath.Dir(path)), backupExample(path))
		}
		// SQLite refusing to read the file is itself the verdict.
		return fail("%v", err)
	}
	res.Problems = problems
	res.OK = len(problems) == 0
	if res.OK && deep != nil {
		problems, err := deep(db)
		if standalone && changedSince(real, fi, h) {
			return res, changedError(path)
		}
		if err != nil {
			return res, err
		}
		res.Problems = problems
		res.OK = len(problems) == 0
	}
	return res, nil
}

// changedSince says whether path is no longer the file fi and header h
// described: a file that stood alone (no journal, no -shm) is read
// without SQLite's locks, so an application that writes it in
// rollback-journal mode, or opens it in WAL mode and checkpoints, changes
// pages under the check, which then read them at different moments and
// may report damage that is not there (or miss some that is). The change
// counter catches a commit that the mtime's coarse clock would not.
func changedSince(path string, fi os.FileInfo, h sqlitefile.Header) bool {
	now, err := os.Stat(path)
	if err != nil || !os.SameFile(fi, now) || now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) ||
		sqlitefile.HasJournal(path) || exists(path+"-shm") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	h2, err := sqlitefile.ReadHeader(f)
	return err != nil || h2.ChangeCounter != h.ChangeCounter
}

// sqliteCode is SQLite's extended result code in err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// backupExample is the command that checks a database in use the safe
// way: a backup copies one consistent snapshot and checks that.
func backupExample(path string) string {
	return fmt.Sprintf("sqlite-backup --source %s --backup-dir /tmp --keep 1", hint.Quote(path))
}

// changedError is the answer for a file that changed during its check:
// no verdict either way.
func changedError(path string) error {
	return hint.Wrap(fmt.Errorf("verify %q: the file changed while it was checked (something is writing to it), so there is no verdict", path),
		"to check a database in use, back it up and the copy is checked: %s", backupExample(path))
}

// Check runs integrity_check or quick_check on an open database and
// returns the problems it lists (none when the database is sound).
func Check(ctx context.Context, db *sql.DB, opts Options) ([]string, error) {
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 10
	}
	pragma := "integrity_check"
	if opts.Quick {
		pragma = "quick_check"
	}
	// Reads may go through mmap (see mmapPragma): a fault there is an
	// error, and the rows are then left alone (see queryRows).
	problems, err := problemRows(ctx, db, fmt.Sprintf("PRAGMA %s(%d)", pragma, opts.MaxProblems))
	if err != nil {
		return problems, err
	}
	return withConstraints(ctx, db, problems, opts.MaxProblems)
}

// checkBeside is Check with the CHECK scans on a second connection
// beside SQLite's check, for a file that stands alone (one immutable
// snapshot for both) and without progress (which counts the pages this
// process reads, and would count them twice).
func checkBeside(ctx context.Context, db *sql.DB, opts Options) ([]string, int, error) {
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 10
	}
	cp, err := planConstraints(ctx, db)
	if err != nil {
		return nil, 1, err
	}
	if cp == nil || len(cp.scans) == 0 {
		problems, err := Check(ctx, db, opts)
		return problems, 1, err
	}
	pragma := "integrity_check"
	if opts.Quick {
		pragma = "quick_check"
	}
	db.SetMaxOpenConns(2)
	defer db.SetMaxOpenConns(1)
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	type scanned struct {
		problems []string
		err      error
	}
	sc := make(chan scanned, 1)
	go func() {
		var out scanned
		for _, c := range cp.scans {
			more, err := c.run(inner, db)
			if err != nil {
				out.err = err
				if errors.Is(err, fault.ErrFault) {
					cancel()
				}
				break
			}
			out.problems = append(out.problems, more...)
		}
		sc <- out
	}()
	problems, err := problemRows(inner, db, fmt.Sprintf("PRAGMA %s(%d)", pragma, opts.MaxProblems))
	if errors.Is(err, fault.ErrFault) {
		cancel()
	}
	s := <-sc
	switch {
	case errors.Is(err, fault.ErrFault):
		return nil, 2, err
	case errors.Is(s.err, fault.ErrFault):
		return nil, 2, s.err
	case err != nil:
		return problems, 2, err
	case s.err != nil:
		return problems, 2, s.err
	}
	problems = append(problems, cp.schema...)
	problems = append(problems, s.problems...)
	return problems[:min(len(problems), opts.MaxProblems)], 2, nil
}

// withConstraints adds the CHECK problems a read-only connection's
// check does not see (checkConstraints) to the check's, up to max.
func withConstraints(ctx context.Context, db *sql.DB, problems []string, max int) ([]string, error) {
	if len(problems) >= max {
		return problems, nil
	}
	more, err := checkConstraints(ctx, db, max-len(problems))
	if err != nil {
		return problems, err
	}
	return append(problems, more...), nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symlink"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.String()
}
