package restore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fsx"
)

// afterStep, when set by a test, is called at each boundary between the
// steps above, so the test can look at the files a SIGKILL there would
// leave.
var afterStep func(step string)

func step(name string) {
	if afterStep != nil {
		afterStep(name)
	}
}

// offline replaces target by a copy of plain. The order is what makes a
// crash (SIGKILL, power loss) at any point leave either the old database
// or the new one, never a mix:
//
//  1. The new file is written, given the target's owner, mode and journal
//     mode, and fsynced as a temp file beside the target.
//  2. The old database is settled: opened with SQLite and checkpointed
//     (wal_checkpoint(TRUNCATE)); opening it also rolls back a hot
//     -journal. Its -wal then holds nothing the file does not, so from
//     here the old file alone is the old database. SQLite's own recovery
//     covers a crash during this step.
//  3. The -wal, -shm and -journal are removed and the directory fsynced.
//     Removing them before step 2 would lose committed transactions still
//     in the -wal; leaving them until after the rename would let SQLite
//     replay the old -wal's frames (or roll back the old journal) onto the
//     new file: WAL frames do not say which database file they belong to.
//  4. rename(temp, target), then the directory is fsynced.
//
// The caller holds the directory lock. A killed run leaves its temp
// file; the next restore or backup run in that directory removes it
// under the lock.
//
// owned says plain is already a private temp file of ours beside the
// target (a decompressed backup, or one downloaded from a remote into a
// private dir there): it is renamed into place itself instead of being
// copied once more.
//
// checkedSum, when not owned, is the SHA-256 the backup was proven to
// have when it was checked (its .sha256 sidecar matched), or "": a copy
// whose bytes hash to it is the checked file, and is not checked again
// in place (CheckedCopied); without one the copy is (CheckedInPlace).
func offline(ctx context.Context, plain string, owned bool, checkedSum string, target string, tgt targetState, res *Result, opts Options) (err error) {
	dir := filepath.Dir(target)
	tmp := plain
	if !owned {
		if tmp, err = createTemp(dir, filepath.Base(target)); err != nil {
			return err
		}
		var h hash.Hash
		if checkedSum != "" {
			h = sha256.New()
		}
		if err := copyFile(ctx, plain, tmp, opts.Pages, h); err != nil {
			os.Remove(tmp)
			return err
		}
		if h != nil {
			if got := hex.EncodeToString(h.Sum(nil)); got != checkedSum {
				os.Remove(tmp)
				return hint.Wrap(fmt.Errorf("backup %q changed after it was checked (sha256 %.12s…, checked %.12s…); nothing was replaced", plain, got, checkedSum),
					"something is writing to the backup; check it again, then restore: sqlite-backup verify %s", hint.Quote(plain))
			}
		}
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
			for _, s := range sqlitefile.Sidecars {
				os.Remove(tmp + s)
			}
		}
	}()
	if tgt.exists {
		if err := keepOwner(tmp, target, tgt.fi); err != nil {
			return err
		}
	} else if err := dirOwner(tmp, dir); err != nil {
		return err
	}
	mode := "delete"
	if tgt.wal {
		mode = "wal"
	}
	if owned || checkedSum != "" {
		// The file that passed the check (or a copy proven to hold its
		// bytes) is the one that gets the name, so it is not checked
		// again there: what proves it is that nothing but its journal
		// mode changed since (setKeepingContent).
		if err := setKeepingContent(ctx, tmp, mode); err != nil {
			return fmt.Errorf("prepare restored file %q: %w", tmp, err)
		}
		res.CheckedAs = CheckedRenamed
		if !owned {
			res.CheckedAs = CheckedCopied
		}
	} else if err := setJournalMode(ctx, tmp, mode); err != nil {
		return fmt.Errorf("prepare restored file %q: %w", tmp, err)
	}
	if err := fsx.SyncFile(tmp); err != nil {
		return fmt.Errorf("fsync restored file %q: %w", tmp, fsx.PathErr(err))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	step("temp written")

	// Last look before the old database is touched: an application that
	// started since the first check must not lose its file.
	if tgt.exists {
		holders, err := Holders(target)
		if err != nil {
			return err
		}
		if len(holders) > 0 {
			return hint.Wrap(fmt.Errorf("restore to %q: %s since the restore started; nothing was replaced", target, describeHolders(holders)),
				"stop the application, or restore into the live database with --online")
		}
		if err := settle(ctx, target, opts); err != nil {
			return err
		}
		step("settled")
	}
	removed, err := removeSidecars(target)
	res.Removed = removed
	if err != nil {
		return err
	}
	if err := fsx.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync directory %q: %w", dir, fsx.PathErr(err))
	}
	step("sidecars removed")
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("rename restored file to %q: %w", target, fsx.PathErr(err))
	}
	res.Replaced = true
	if err := fsx.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync directory %q: %w", dir, fsx.PathErr(err))
	}
	step("renamed")
	return nil
}

// settle folds the old database's -wal into the file and rolls back a hot
// journal, so the file alone holds the last committed state.
func settle(ctx context.Context, target string, opts Options) error {
	uri, err := sqlitefile.URI(target, url.Values{
		"mode":    {"rw"}, // never create
		"_pragma": {"busy_timeout(" + strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10) + ")"},
	})
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return fmt.Errorf("open %q: %w", target, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// Reading the schema rolls back a hot journal and recovers the -wal.
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return settleError(target, err)
	}
	var busy, logFrames, done int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
		return settleError(target, err)
	}
	if busy != 0 {
		return hint.Wrap(fmt.Errorf("checkpoint %q: another connection kept it busy; nothing was replaced", target),
			"stop the application, or restore into the live database with --online")
	}
	if err := db.Close(); err != nil {
		return settleError(target, err)
	}
	// The checkpoint emptied the -wal; a non-empty one now means someone
	// wrote in between.
	if fi, err := os.Stat(target + "-wal"); err == nil && fi.Size() > 0 {
		return hint.Wrap(fmt.Errorf("restore to %q: its -wal was written to during the restore; nothing was replaced", target),
			"stop the application, or restore into the live database with --online")
	}
	return nil
}

func settleError(target string, err error) error {
	return hint.Wrap(fmt.Errorf("settle current database %q before replacing it: %w; nothing was replaced", target, err),
		"if the current file is beyond reading, move it and its -wal aside yourself and restore to the free name")
}

// removeSidecars removes the target's -wal, -shm and -journal.
func removeSidecars(target string) ([]string, error) {
	var removed []string
	for _, s := range sqlitefile.Sidecars {
		err := os.Remove(target + s)
		switch {
		case err == nil:
			removed = append(removed, target+s)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return removed, fmt.Errorf("remove stale %q: %w; nothing was replaced", target+s, fsx.PathErr(err))
		}
	}
	return removed, nil
}

// setJournalMode gives the restored file the target's journal mode, so a
// WAL application gets a WAL database back. Closing the only connection
// checkpoints and deletes the temp's own -wal/-shm.
func setJournalMode(ctx context.Context, p, mode string) error {
	uri, err := sqlitefile.URI(p, url.Values{"mode": {"rw"}})
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var got string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode="+mode).Scan(&got); err != nil {
		return err
	}
	if got != mode {
		return fmt.Errorf("journal_mode is %q after setting %s", got, mode)
	}
	if err := db.Close(); err != nil {
		return err
	}
	for _, s := range sqlitefile.Sidecars {
		if _, err := os.Lstat(p + s); err == nil {
			return fmt.Errorf("%s left behind after closing", s)
		}
	}
	return nil
}

// afterCheck, when set by a test, runs right after a backup's check,
// before anything else reads the backup or its sidecars.
var afterCheck func()

// setMode is setJournalMode; a test makes it write more.
var setMode = setJournalMode

// rewritten are the header bytes SQLite rewrites when it sets the
// journal mode: the write and read versions (18, 19: 2 for WAL, 1 for
// rollback), the change counter (24-27), and the version-valid-for
// number and SQLite version that go with it (92-99). Nothing
// integrity_check reads is among them. The in-header database size
// (28-31) is not: a file whose size field SQLite would rewrite (one
// last written before SQLite 3.7.0) fails the proof rather than pass it.
var rewritten = [...][2]int{{18, 20}, {24, 28}, {92, 100}}

// setKeepingContent sets the journal mode of a checked file and proves
// that nothing else in it changed: its SHA-256 with the rewritten
// header bytes zeroed is the same after as before (both reads through
// the page cache, as the check's own). A file already in that mode is
// not opened at all.
func setKeepingContent(ctx context.Context, p, mode string) error {
	h, err := readHeaderBytes(p)
	if err != nil {
		return err
	}
	want := byte(1)
	if mode == "wal" {
		want = 2
	}
	if h[18] == want && h[19] == want {
		return nil
	}
	before, err := contentSum(ctx, p)
	if err != nil {
		return err
	}
	if err := setMode(ctx, p, mode); err != nil {
		return err
	}
	after, err := contentSum(ctx, p)
	if err != nil {
		return err
	}
	if before != after {
		return fmt.Errorf("setting journal_mode %s changed more than its header fields (sha256 %x before, %x after)", mode, before[:8], after[:8])
	}
	return nil
}

func readHeaderBytes(p string) ([100]byte, error) {
	var h [100]byte
	f, err := os.Open(p)
	if err != nil {
		return h, fsx.PathErr(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return h, fmt.Errorf("read header: %w", err)
	}
	return h, nil
}

// contentSum is the SHA-256 of p with the rewritten header bytes zeroed.
func contentSum(ctx context.Context, p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, fsx.PathErr(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for first := true; ; first = false {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		n, err := io.ReadFull(f, buf)
		if first && n >= 100 {
			for _, r := range rewritten {
				clear(buf[r[0]:r[1]])
			}
		}
		h.Write(buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("read: %w", fsx.PathErr(err))
		}
	}
	h.Sum(sum[:0])
	return sum, nil
}

// createTemp creates an empty, private (0600) temp file in dir, named so
// that backup and restore runs clean up each other's leftovers.
func createTemp(dir, base string) (string, error) {
	p, err := fsx.CreateEmptyTemp(dir, base, 0o600)
	if err != nil {
		return "", fmt.Errorf("create temp file in %q: %w", dir, err)
	}
	return p, nil
}

// copyFile copies src into dst, reporting progress (if set) in pages of
// src's page size.
func copyFile(ctx context.Context, src, dst string, progress func(done, total int64), h hash.Hash) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open backup %q: %w", src, fsx.PathErr(err))
	}
	defer in.Close()
	ps, total, done := int64(4096), int64(0), int64(0)
	if progress != nil {
		if h, err := sqlitefile.ReadHeader(in); err == nil && h.PageSize > 0 {
			ps = int64(h.PageSize)
		}
		if fi, err := in.Stat(); err == nil {
			total = fi.Size()
		}
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("read backup %q: %w", src, fsx.PathErr(err))
		}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", dst, fsx.PathErr(err))
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %q: %w", dst, fsx.PathErr(err))
			}
			if h != nil {
				h.Write(buf[:n])
			}
			if done += int64(n); progress != nil {
				progress(done/ps, total/ps)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read backup %q: %w", src, fsx.PathErr(rerr))
		}
	}
	return out.Close()
}

// dirOwner gives a new database the owner and group of its directory
// when this runs as root and the directory belongs to another user: the
// application that keeps its data there (www-data in /srv/app/data) must
// be able to open it, as a file it created itself. Otherwise the file
// stays this user's (mode 0600, and the CLI says so when that is root).
func dirOwner(tmp, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil || st.Uid == 0 {
		return nil
	}
	if err := os.Chown(tmp, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give the new database the owner %d:%d of %q: %w", st.Uid, st.Gid, dir, fsx.PathErr(err))
	}
	return nil
}

// keepOwner gives the new file the old one's permission bits and owner,
// so the application can still open it. Failing to keep the owner is an
// error: a database the application cannot write is an outage.
func keepOwner(tmp, target string, fi fs.FileInfo) error {
	if err := os.Chmod(tmp, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("chmod %q: %w", tmp, fsx.PathErr(err))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var cur syscall.Stat_t
	if err := syscall.Stat(tmp, &cur); err != nil {
		return fmt.Errorf("stat %q: %w", tmp, err)
	}
	if cur.Uid == st.Uid && cur.Gid == st.Gid {
		return nil
	}
	if err := os.Chown(tmp, int(st.Uid), int(st.Gid)); err != nil {
		return hint.Wrap(fmt.Errorf("restore to %q: cannot give the new file the owner %d:%d of the current one: %w", target, st.Uid, st.Gid, fsx.PathErr(err)),
			"run the restore as the database's owner or as root")
	}
	return nil
}
