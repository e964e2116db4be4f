// Package snapshot takes a consistent copy of a live SQLite database and
// publishes it only once it is known good: the copy is written to a
// private temp file beside its final name, made self-contained
// (journal_mode=DELETE), fsynced, checked with integrity_check and only
// then renamed into place. The source is opened read-only through a
// file: URI and is never written, created, checkpointed or switched to
// another journal mode.
package snapshot

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
	"sync"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fault"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/internal/sys/lock"
	"sqlite-backup/verify"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Method selects how the snapshot is copied.
type Method string

const (
	// MethodBackup copies pages with SQLite's online backup API inside one
	// read transaction, so the copy is one snapshot however long it takes.
	MethodBackup Method = "backup"
	// MethodVacuum runs VACUUM INTO: slower, but the copy is defragmented
	// and free pages are dropped.
	MethodVacuum Method = "vacuum"
)

// VerifyMode says how the copy is checked before it gets its final name.
type VerifyMode string

const (
	VerifyFull  VerifyMode = "integrity_check"
	VerifyQuick VerifyMode = "quick_check"
	VerifyNone  VerifyMode = "none"
)

// Options describe one backup.
type Options struct {
	Source string // database to copy; must exist and be a SQLite file
	Dir    string // destination directory, used when Path is empty
	Path   string // explicit destination file; must not exist
	Method Method
	Verify VerifyMode
	// BusyTimeout is how long to wait for a writer's lock on the source.
	BusyTimeout time.Duration
	// LockTimeout is how long to wait for another run working in the
	// same backup directory (0: fail at once).
	LockTimeout time.Duration
	// LockHeld says the caller already holds the destination directory's
	// lock (restore's safety copy): Run neither takes it again, which
	// would wait on itself, nor removes temp files, which may be the
	// caller's own.
	LockHeld bool
	// Now is read when the copy begins, which names the backup; tests
	// inject a clock. Defaults to time.Now.
	Now func() time.Time
	// Progress, if set, is called as pages are copied.
	Progress func(done, total int)

	// Compress, if set, streams the verified copy into a .zst/.gz file
	// that is published instead of it.
	Compress compress.Kind
	// Recipients, if any, get the verified copy (compressed first, if
	// asked) encrypted with age for them, published as <name>[.zst].age;
	// it is proven to decrypt before it gets its name.
	Recipients []age.Recipient
	// EncryptProgress, if set, is called with the bytes encrypted so far.
	EncryptProgress func(done, total int64)
	// Snapshot, if set, is called with a connection that sees exactly the
	// snapshot copied: inside the read transaction that pins it (method
	// backup), or on the finished copy (method vacuum: VACUUM INTO cannot
	// run inside a transaction). Used for row counts and content hashes.
	Snapshot func(ctx context.Context, conn *sql.Conn) error
	// Checked, if set, is called with the copy as a plain SQLite file
	// once it passed its check (or when the check is skipped), before it
	// is compressed or encrypted: an incremental chain indexes its pages
	// there (chain.IndexFull). Its error fails the run; nothing is
	// published.
	Checked func(ctx context.Context, plain string) error
	// Published, if set, is called after the backup got its final name,
	// still holding the directory lock (sidecars, pruning). Its error is
	// returned together with the Result: the backup itself is in place.
	Published func(ctx context.Context, res *Result) error
	// VerifyProgress, if set, is passed to verify.Options.Progress.
	VerifyProgress func(done, total int64, finished bool)
	// Phase, if set, is called as each phase starts ("copy", "verify",
	// "compress", "encrypt"), so a terminal can show one that reports no counts.
	Phase func(name string)
}

func (o Options) phase(name string) {
	if o.Phase != nil {
		o.Phase(name)
	}
}

// Result describes a published backup.
type Result struct {
	Source string `json:"source"`
	// SourceTarget is the file a symbolic link given as Source names,
	// which SQLite and the copy read; empty when Source is no link.
	SourceTarget string     `json:"source_target,omitempty"`
	Path         string     `json:"path"`
	Size         int64      `json:"size"`
	Pages        int        `json:"pages"`
	PageSize     int        `json:"page_size"`
	Method       Method     `json:"method"`
	Verify       string     `json:"verify"` // "ok" or "skipped"
	Check        VerifyMode `json:"check"`
	// CheckThreads is how many cores the check used: one while the
	// application wrote to the source, else all it could use.
	CheckThreads int `json:"check_threads,omitempty"`
	// Compression is "none", "zstd" or "gzip"; Uncompressed the size of
	// the database inside a compressed backup.
	Compression  compress.Kind `json:"compression"`
	Uncompressed int64         `json:"uncompressed_size,omitempty"`
	// Encryption is "age" for an encrypted backup (Uncompressed is then
	// the size of the database inside).
	Encryption string        `json:"encryption,omitempty"`
	Duration   time.Duration `json:"-"`
	// Started is when the copy began: the database as of this instant
	// is what the backup holds, and its name carries this time.
	Started   time.Time `json:"started"`
	SourceWAL bool      `json:"source_wal"`
	// Copier says what copied the pages; FileCopySkipped why the file
	// copy could not be used, when it could not.
	Copier          Copier `json:"copier"`
	FileCopySkipped string `json:"file_copy_skipped,omitempty"`
	// SHA256 is the published file's hash when it is already known (the
	// file copy hashes what it writes, the compression's round-trip check
	// what it reads), else empty.
	SHA256 string `json:"-"`
}

// stepPages is how many pages one backup step copies. Between steps the
// context is checked and progress reported; the snapshot does not move
// because the read transaction stays open across steps.
const stepPages = 4096

// Run takes one backup. On any error, including cancellation of ctx, the
// temp file is removed and nothing appears under a final name.
func Run(ctx context.Context, opts Options) (res *Result, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Method == "" {
		opts.Method = MethodBackup
	}
	if opts.Verify == "" {
		opts.Verify = VerifyFull
	}
	if opts.Compress == "" {
		opts.Compress = compress.None
	}
	started := opts.Now()

	given, src, srcHdr, err := checkSource(opts.Source)
	if err != nil {
		return nil, err
	}
	// From here on src is the file SQLite opens; the backup is named
	// after the path as given, and an error names both.
	if given != src {
		defer func() {
			if err != nil {
				err = linkError(err, given, src)
			}
		}()
	}
	dst, err := planDestination(given, src, opts)
	if err != nil {
		return nil, err
	}

	if !opts.LockHeld {
		lk, err := lock.Acquire(ctx, dst.dir, opts.LockTimeout)
		if err != nil {
			return nil, err
		}
		defer lk.Release()
		// Holding the lock, any temp file of ours in the directory belongs
		// to a run that died (SIGKILL, power loss): remove it.
		RemoveStaleTemps(dst.dir)
	}

	tmp, err := createTemp(dst.dir, filepath.Base(given))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			removeTemp(tmp)
		}
	}()

	// moved says whether the application has written to the source
	// since the copy began: the hash then waits for the end of the copy
	// (followHash), and the check keeps to one core (below).
	before := sourceState(src)
	moved := func() bool { return sourceState(src) != before }
	opts.phase("copy")
	// The backup holds the database as of now (its read transaction
	// begins here): this instant names it and is its "started", however
	// long the lock wait before or the check after.
	taken := opts.Now()
	cp, err := copySnapshot(ctx, src, tmp, opts, moved)
	if err != nil {
		return nil, err
	}
	if cp.hash != nil {
		defer cp.hash.Stop() // on the way out of a failed run
	}
	pageSize := 0
	if cp.how == CopierFile {
		// Written self-contained, and its hash must stay true.
		pageSize = cp.pageSize
	} else if pageSize, err = selfContain(ctx, tmp); err != nil {
		if derr := destWriteError(err, dst.dir); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("finish backup %q: %w", tmp, err)
	}
	if opts.Method == MethodVacuum && opts.Snapshot != nil {
		if err := snapshotOfCopy(ctx, tmp, opts.Snapshot); err != nil {
			return nil, err
		}
	}
	// An encrypted or compressed backup publishes the packed file, which
	// Seal or compressTemp fsyncs; the plain copy is only read (checked,
	// packed) and removed, so it needs no fsync, and may never reach the
	// disk.
	encrypting := len(opts.Recipients) > 0
	packing := encrypting || opts.Compress != compress.None
	packPhase := "compress"
	if encrypting {
		packPhase = "encrypt"
	}
	if !packing {
		if err := fsx.SyncFile(tmp); err != nil {
			if noSpace(err) { // delayed allocation: the disk filled at the fsync
				return nil, fileWriteError(err, dst.dir)
			}
			return nil, fmt.Errorf("fsync backup %q: %w", tmp, err)
		}
	}
	sum := ""
	if cp.hash != nil {
		// Hashed while the fsync waited on the disk.
		if sum, err = cp.hash.Wait(ctx); err != nil {
			return nil, err
		}
	}

	verdict, threads := "skipped", 0
	var pack *packRun // the encryption or compression, run beside the check
	defer func() {
		if pack != nil && err != nil {
			pack.abandon()
		}
	}()
	if opts.Verify != VerifyNone {
		opts.phase("verify")
		// While the application writes, the check keeps to one core and
		// leaves it the other: held to one P, the Go runtime keeps the
		// check's thread on one core, and the application's commits' p99
		// during the check measured 1.9-2.8 ms against 4.2-5.3 ms with
		// two (idle 1.0-2.9 ms); and every thread of the process stays on
		// that core (oneCore), or the runtime's others, sysmon among
		// them, still take the other core from the application. When the
		// source did not change from before the copy to now, nobody is
		// writing, and the full check runs on every core (verify's
		// parallel check). An encryption runs beside the check, under
		// the same rule, and is discarded if the check fails.
		vr, err := func() (verify.Result, error) {
			if moved() {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
				defer oneCore()() // the CPUs given back first, then the Ps
			}
			if packing {
				pack = startPack(ctx, tmp, dst.dir, filepath.Base(given), opts)
			}
			vr, err := verify.File(ctx, tmp, verify.Options{Quick: opts.Verify == VerifyQuick, Progress: opts.VerifyProgress})
			if pack != nil && err == nil && vr.OK {
				opts.phase(packPhase)
				<-pack.done // still on one core under a writer
			}
			return vr, err
		}()
		if err != nil {
			return nil, err
		}
		if !vr.OK {
			vr.Path = src
			return nil, hint.Wrap(fmt.Errorf("backup of %q failed %s, so it was not kept: %w", src, vr.Check, &verify.FailedError{Result: vr}),
				"the source itself may be damaged; check it with: sqlite-backup verify %s", hint.Quote(src))
		}
		verdict = "ok"
		threads = vr.Threads
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Checked != nil {
		if err := opts.Checked(ctx, tmp); err != nil {
			return nil, err
		}
	}

	var uncompressed int64
	suffix, encryption := opts.Compress.Suffix(), ""
	if packing && pack == nil {
		// Not checked (--no-verify): packed now.
		opts.phase(packPhase)
		pack = startPack(ctx, tmp, dst.dir, filepath.Base(given), opts)
	}
	if packing {
		err := pack.wait()
		done := pack
		pack = nil // its temp file is removed with a failed run
		if err != nil {
			return nil, err
		}
		removeTemp(tmp)
		if encrypting {
			sum = done.sealed.SHA256 // the .sha256 sidecar covers the ciphertext
			tmp, uncompressed = done.tmp, done.sealed.Uncompressed
			suffix += encrypt.Suffix
			encryption = "age"
		} else {
			// The round-trip check read the compressed file: its hash
			// is the one to record.
			sum = done.sum
			tmp, uncompressed = done.tmp, done.size
		}
	}

	final, err := publish(tmp, dst, taken, suffix)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(final)
	if err != nil {
		return nil, fmt.Errorf("stat backup %q: %w", final, err)
	}
	target := ""
	if given != src {
		target = src
	}
	res = &Result{
		Source:       given,
		SourceTarget: target,
		Path:         final,
		Size:         fi.Size(),
		Pages:        cp.pages,
		PageSize:     pageSize,
		Method:       opts.Method,
		Verify:       verdict,
		Check:        opts.Verify,
		Duration:     time.Since(started),
		Started:      taken,
		SourceWAL:    srcHdr.WAL,

		CheckThreads:    threads,
		Compression:     opts.Compress,
		Uncompressed:    uncompressed,
		Encryption:      encryption,
		Copier:          cp.how,
		FileCopySkipped: cp.why,
		SHA256:          sum,
	}
	if opts.Published != nil {
		if err := opts.Published(ctx, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// linkError says, for an error about a source given as a symbolic link,
// which file the link names: the error speaks of that file.
func linkError(err error, given, real string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	werr := fmt.Errorf("%w (--source %q is a symbolic link to %q)", err, given, real)
	if h := hint.Of(err); h != "" {
		return hint.Wrap(werr, "%s", h)
	}
	return werr
}

// copySnapshot copies one consistent snapshot of src into the empty file
// tmp and says how.
func copySnapshot(ctx context.Context, src, tmp string, opts Options, moved func() bool) (_ copied, err error) {
	// Opened before SQLite opens the source and closed after it closed
	// it (defers run last-in first-out): see sourceFiles.
	files := openSourceFiles(src)
	defer func() {
		if !errors.Is(err, fault.ErrFault) { // the abandoned connection keeps its locks
			files.Close()
		}
	}()
	defer func() {
		if terr := truncatedAfterFailure(src, files, err); terr != nil {
			err = terr
		}
	}()
	uri, err := sqlitefile.URI(src, url.Values{
		"mode":    {"ro"},
		"_pragma": {"busy_timeout(" + strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10) + ")", mmapPragma()},
	})
	if err != nil {
		return copied{}, fmt.Errorf("open source %q: %w", src, err)
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return copied{}, fmt.Errorf("open source %q: %w", src, err)
	}
	// After a fault in a mapped read SQLite's state is undefined: drop
	// the connection without touching it again.
	defer func() {
		if !errors.Is(err, fault.ErrFault) {
			db.Close()
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return copied{}, sourceError(ctx, src, "open source", err, opts.BusyTimeout)
	}
	defer func() {
		if !errors.Is(err, fault.ErrFault) {
			conn.Close()
		}
	}()

	switch opts.Method {
	case MethodVacuum:
		if damage, err := truncatedBeforeVacuum(ctx, conn, files); err != nil {
			return copied{}, sourceError(ctx, src, "read source", err, opts.BusyTimeout)
		} else if damage != nil {
			return copied{}, damage
		}
		err := fault.Guard(func() error {
			_, err := conn.ExecContext(ctx, "VACUUM INTO ?", tmp)
			return err
		})
		if errors.Is(err, fault.ErrFault) {
			return copied{}, fmt.Errorf("vacuum source %q: %w", src, err)
		}
		if err != nil {
			if derr := destWriteError(err, filepath.Dir(tmp)); derr != nil {
				return copied{}, derr
			}
			return copied{}, sourceError(ctx, src, "vacuum source", err, opts.BusyTimeout)
		}
		f, err := os.Open(tmp)
		if err != nil {
			return copied{}, fmt.Errorf("open backup %q: %w", tmp, err)
		}
		defer f.Close()
		h, err := sqlitefile.ReadHeader(f)
		if err != nil {
			return copied{}, fmt.Errorf("read backup %q: %w", tmp, err)
		}
		return copied{pages: int(h.Pages), pageSize: h.PageSize, how: CopierVacuum}, nil
	case MethodBackup:
		return onlineBackup(ctx, conn, files, src, tmp, opts, moved)
	default:
		return copied{}, fmt.Errorf("unknown backup method %q", opts.Method)
	}
}

// backuper is what modernc's driver connection offers for the online
// backup API.
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// copied says how a snapshot was copied.
type copied struct {
	pages    int
	pageSize int
	// hash is the SHA-256 of the copy as written, when the file copy
	// wrote it (the backup API's copy is changed again afterwards).
	hash *followHash
	how  Copier
	why  string // why the file copy was not used
}

// Copier names what copied the pages (Result.Copier).
type Copier string

const (
	CopierFile   Copier = "file"       // read the files under SQLite's read lock
	CopierAPI    Copier = "backup_api" // SQLite's online backup API
	CopierVacuum Copier = "vacuum_into"
)

func onlineBackup(ctx context.Context, conn *sql.Conn, files *sourceFiles, src, tmp string, opts Options, moved func() bool) (_ copied, err error) {
	// One read transaction pins the snapshot for the whole copy. Without
	// it every backup API step takes a fresh read lock and a write by
	// another process restarts the copy from page 1, so under a steady
	// writer it would never finish. In WAL mode this reader does not
	// block writers.
	plan, why, err := beginSnapshot(ctx, conn, files)
	if err != nil {
		return copied{}, sourceError(ctx, src, "read source", err, opts.BusyTimeout)
	}
	defer func() {
		if !errors.Is(err, fault.ErrFault) {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if damage, err := truncatedUnderLock(ctx, conn, files); err != nil {
		return copied{}, sourceError(ctx, src, "read source", err, opts.BusyTimeout)
	} else if damage != nil {
		return copied{}, damage
	}
	hook := func(ctx context.Context) error {
		if opts.Snapshot == nil {
			return nil
		}
		err := fault.Guard(func() error { return opts.Snapshot(ctx, conn) })
		if errors.Is(err, fault.ErrFault) {
			return fmt.Errorf("read source %q: %w", src, err)
		}
		if err != nil {
			return sourceError(ctx, src, "read source", err, opts.BusyTimeout)
		}
		return nil
	}
	if plan != nil {
		// The hook reads through SQLite while the copy reads the files:
		// they share nothing but the snapshot. Beside the copy it keeps a
		// second core busy, as the hash did (see followHash): the row
		// counts of a 1.2 GB database whose largest table has no index
		// took 163-382 ms, half the copy's 0.3-0.4 s or more, and beside a
		// writer committing every 10 ms, 15 commits over 4 ms came in the
		// phase before the fsync in 10 backups, against 6 without the
		// counts (with this: 6 against 9 in 6 backups of the benchmark).
		// So the hook waits for the copy's first round: if the source has
		// moved by then, it runs after the copy, still inside the
		// snapshot, and a hash that waits for the end of the copy also
		// waits for it. Where nobody writes, it runs beside the copy, one
		// round late. The choice is made once: a writer that starts later
		// meets both, and a database of one round never overlaps.
		hookErr := make(chan error, 1)
		hctx, hcancel := context.WithCancel(ctx)
		defer hcancel()
		firstRound, copyDone, hookDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var once sync.Once
		progress := func(done, total int) {
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
			once.Do(func() { close(firstRound) })
		}
		go func() {
			defer close(hookDone)
			select {
			case <-firstRound:
			case <-copyDone:
			}
			if opts.Snapshot != nil && moved() {
				<-copyDone
				countPlan("counted after the copy")
			}
			if err := hctx.Err(); err != nil {
				hookErr <- err // the copy failed for good: do not start
				return
			}
			hookErr <- hook(hctx)
		}()
		hash, err := copyFile(ctx, files, plan, tmp, progress, opts.Compress == compress.None && len(opts.Recipients) == 0, moved, hookDone)
		var ep *errPlan
		fatal := err != nil && !errors.As(err, &ep)
		if fatal {
			// The copy failed for good (a full disk): do not wait for a
			// long --deep hash of the source before saying so.
			hcancel()
		}
		close(copyDone)
		if fatal {
			if herr := <-hookErr; errors.Is(herr, fault.ErrFault) {
				return copied{}, herr // the connection must be dropped unused
			}
			return copied{}, err
		}
		if herr := <-hookErr; herr != nil {
			hash.Stop()
			return copied{}, herr
		}
		if err == nil {
			err = fault.Guard(func() error { return spotCheck(ctx, conn, plan, tmp) })
			if errors.Is(err, fault.ErrFault) {
				hash.Stop()
				return copied{}, fmt.Errorf("read source %q: %w", src, err)
			}
			if err != nil && ctx.Err() == nil {
				err = &errPlan{"spot check: " + err.Error()}
			}
			if err != nil {
				hash.Stop()
			}
		}
		switch {
		case err == nil:
			return copied{pages: int(plan.pages), pageSize: plan.pageSize, hash: hash, how: CopierFile}, nil
		case errors.As(err, &ep):
			// Not expected: let SQLite copy instead, and say so.
			why = ep.msg
			if err := os.Truncate(tmp, 0); err != nil {
				return copied{}, fmt.Errorf("truncate backup %q: %w", tmp, err)
			}
		case ctx.Err() != nil:
			return copied{}, ctx.Err()
		default:
			return copied{}, err
		}
	} else if err := hook(ctx); err != nil {
		return copied{}, err
	}
	pages, err := apiCopy(ctx, conn, src, tmp, opts)
	return copied{pages: pages, how: CopierAPI, why: why}, err
}

// apiCopy copies the snapshot pinned on conn with SQLite's online backup
// API.
func apiCopy(ctx context.Context, conn *sql.Conn, src, tmp string, opts Options) (_ int, err error) {
	// The temp file is thrown away on failure, so it needs no journal and
	// no syncs while it is written; one fsync follows before it is kept.
	dstURI, err := sqlitefile.URI(tmp, url.Values{"_pragma": {"journal_mode(OFF)", "synchronous(OFF)"}})
	if err != nil {
		return 0, err
	}
	pages := 0
	err = conn.Raw(func(dc any) error {
		bk, ok := dc.(backuper)
		if !ok {
			return errors.New("sqlite driver does not support the online backup API")
		}
		b, err := bk.NewBackup(dstURI)
		if err != nil {
			return fmt.Errorf("open backup %q: %w", tmp, err)
		}
		for {
			var more bool
			err := fault.Guard(func() (err error) {
				more, err = b.Step(stepPages)
				return err
			})
			if errors.Is(err, fault.ErrFault) {
				return fmt.Errorf("copy source %q: %w", src, err)
			}
			if err != nil {
				b.Finish()
				if derr := destWriteError(err, filepath.Dir(tmp)); derr != nil {
					return derr
				}
				return sourceError(ctx, src, "copy source", err, opts.BusyTimeout)
			}
			pages = b.PageCount()
			if opts.Progress != nil {
				opts.Progress(pages-b.Remaining(), pages)
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
			return fmt.Errorf("write backup %q: %w", tmp, err)
		}
		return nil
	})
	return pages, err
}

// selfContain switches the finished copy to journal_mode=DELETE. The
// backup API copies page 1 verbatim, so a WAL source yields a copy that
// says "WAL" and would want -wal/-shm files beside it; a backup must be
// one file that any SQLite opens as it is.
func selfContain(ctx context.Context, tmp string) (pageSize int, err error) {
	// Exclusive locking before the first read: SQLite then keeps a WAL
	// copy's wal-index in memory instead of creating a 32 KB -shm beside
	// it, which on a nearly full disk failed with "disk I/O error (4874)".
	uri, err := sqlitefile.URI(tmp, url.Values{"_pragma": {"locking_mode(EXCLUSIVE)"}})
	if err != nil {
		return 0, err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "PRAGMA synchronous=OFF"); err != nil {
		return 0, err
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=DELETE").Scan(&mode); err != nil {
		return 0, err
	}
	if mode != "delete" {
		return 0, fmt.Errorf("journal_mode is %q after switching to delete", mode)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return 0, err
	}
	return pageSize, db.Close()
}

// sourceError names the operation and the source, and turns SQLite's
// busy/locked into the message and hint an operator can act on.
func sourceError(ctx context.Context, src, op string, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rerr := readonlyDirError(src, op, err); rerr != nil {
		return rerr
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return hint.Wrap(fmt.Errorf("%s %q: database is locked: another process held a write lock longer than the busy timeout (%s)", op, src, timeout),
				"wait longer for the writer: sqlite-backup --source %s --busy-timeout 2m", hint.Quote(src))
		case sqlite3.SQLITE_INTERRUPT:
			return context.Canceled
		}
		if se.Code() == sqlite3.SQLITE_READONLY_ROLLBACK {
			return hotJournalError(src, op, err)
		}
	}
	return fmt.Errorf("%s %q: %w", op, src, err)
}

// hotJournalError explains SQLITE_READONLY_ROLLBACK: a writer died in
// mid-transaction and left a hot journal, which must be rolled back
// into the file before anyone reads it, and the backup, which never
// writes to the source, may not do that.
func hotJournalError(src, op string, err error) error {
	return hint.Wrap(fmt.Errorf("%s %q: a writer stopped in mid-transaction; its journal %q must be rolled back into the database before it can be copied, and a backup never writes to the source (SQLite: %w)",
		op, src, src+"-journal", err),
		"do not delete the journal: it holds what the file needs. Open the database once with the application, or as its owner run: sqlite3 %s \"PRAGMA quick_check\" (either rolls it back); then back up again", hint.Quote(src))
}

// fileState is what a commit to a database changes: the size and time of
// the file and of its -wal.
type fileState struct {
	size, mtime, wal, walMtime int64 // bytes and Unix nanoseconds
}

// sourceState reads src's fileState. An empty or missing -wal count the
// same: opening a WAL database that nobody has open creates an empty one.
func sourceState(src string) fileState {
	var s fileState
	if fi, err := os.Stat(src); err == nil {
		s.size, s.mtime = fi.Size(), fi.ModTime().UnixNano()
	}
	if fi, err := os.Stat(src + "-wal"); err == nil && fi.Size() > 0 {
		s.wal, s.walMtime = fi.Size(), fi.ModTime().UnixNano()
	}
	return s
}
