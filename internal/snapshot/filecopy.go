package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"sqlite-backup/internal/format/sqlitefile"

	"golang.org/x/sys/unix"
)

// The file copy. The backup API moves every page through two SQLite pagers
// (about 2.5 s of CPU per GB in the transpiled engine); reading the
// database file ourselves, with large reads and writes, costs about what
// cp costs. It is only as consistent as the backup API because a SQLite
// read transaction on the source stays open around it, and only where
// that transaction provably keeps the bytes we read still:
//
//   - rollback journal: the read transaction holds a SHARED lock, so no
//     writer may change the database file until it ends;
//   - WAL, everything checkpointed (nBackfill == mxFrame when the
//     transaction began): the reader takes read-mark 0 and reads the
//     database file only, and no checkpoint may copy frames into the file
//     while read-mark 0 is held;
//   - WAL with frames not yet checkpointed: the reader holds a read mark
//     m <= mxFrame, so checkpoints copy back no frame beyond m and the WAL
//     cannot be restarted (overwritten); the snapshot is the database file
//     overlaid with the newest image of each page among frames 1..mxFrame.
//
// Which case applies, and the snapshot's mxFrame, come from the -shm
// header read before and after the transaction began: if the two readings
// are equal (same file, same bytes, nBackfill not lower), nothing was
// committed, restarted or recovered in between, so the transaction pinned
// exactly that state. The WAL frames are checked against it (salts,
// checksum chain, commit frame). A -shm this process cannot write is not
// trusted: SQLite then reads without the shared index. Anything unexpected
// falls back to the backup API inside the same read transaction.
//
// POSIX locks belong to the process and inode: closing any descriptor of
// the database or its -shm drops SQLite's locks on it. The descriptors
// opened here are therefore closed only after the SQLite connection is.

// sourceFiles are the descriptors the file copy reads.
type sourceFiles struct {
	path         string
	db, wal, shm *os.File
	stale        []*os.File // replaced -shm descriptors, closed with the rest
}

// openSourceFiles opens the database file; -wal and -shm are opened
// lazily, as SQLite may create them only once it reads.
func openSourceFiles(src string) *sourceFiles {
	f := &sourceFiles{path: src}
	f.db, _ = os.Open(src)
	return f
}

// openShm and openWAL retry until they succeed: SQLite may create the
// file only once it reads. openShm also follows a -shm that was deleted
// and created anew (the last connection to close deletes it), so a
// reading never comes from a file SQLite no longer uses.
func (f *sourceFiles) openShm() (*os.File, error) {
	if f.shm != nil && !samePath(f.shm, f.path+"-shm") {
		f.stale = append(f.stale, f.shm)
		f.shm = nil
	}
	if f.shm == nil {
		var err error
		if f.shm, err = os.Open(f.path + "-shm"); err != nil {
			return nil, err
		}
	}
	return f.shm, nil
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func (f *sourceFiles) openWAL() (*os.File, error) {
	if f.wal == nil {
		var err error
		if f.wal, err = os.Open(f.path + "-wal"); err != nil {
			return nil, err
		}
	}
	return f.wal, nil
}

// readIndex reads the wal-index and says which -shm it came from.
func (f *sourceFiles) readIndex() (sqlitefile.WALIndex, *os.File, error) {
	shm, err := f.openShm()
	if err != nil {
		return sqlitefile.WALIndex{}, nil, err
	}
	idx, err := sqlitefile.ReadWALIndex(shm)
	return idx, shm, err
}

// Close must run after the SQLite connection to the source is closed.
func (f *sourceFiles) Close() {
	for _, x := range append([]*os.File{f.db, f.wal, f.shm}, f.stale...) {
		if x != nil {
			x.Close()
		}
	}
}

// filePlan says how to copy the pinned snapshot: the pages of the
// database file, each replaced by its newest WAL frame if it has one.
type filePlan struct {
	pageSize int
	pages    int64
	frames   map[uint32]int64 // page number → offset of its image in the WAL
}

// beginSnapshot starts the read transaction that pins the snapshot and
// works out whether the file copy can copy it. It returns a nil plan, and
// the reason, when only the backup API can; the transaction is open
// either way once err is nil.
func beginSnapshot(ctx context.Context, conn *sql.Conn, files *sourceFiles) (plan *filePlan, why string, err error) {
	begin := func() error {
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return err
		}
		// The first read starts the transaction and pins the snapshot.
		var n int
		return conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		before, bshm, berr := files.readIndex()
		if err := begin(); err != nil {
			return nil, "", err
		}
		plan, why, retry, err := planCopy(ctx, conn, files, before, bshm, berr)
		switch {
		case err != nil:
		case retry:
			countPlan("retry: " + why)
		case plan == nil:
			countPlan("backup API: " + why)
		case plan.frames != nil:
			countPlan("WAL frames over the file")
		default:
			countPlan("the file alone")
		}
		if err != nil || !retry || attempt == attempts {
			if retry {
				why = "the WAL changed while the snapshot was taken, " + why
			}
			return plan, why, err
		}
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			return nil, "", err
		}
	}
}

// planCopy decides, inside the just-begun transaction, what the file copy
// would read. before is the -shm header read just before it began.
func planCopy(ctx context.Context, conn *sql.Conn, files *sourceFiles, before sqlitefile.WALIndex, bshm *os.File, berr error) (plan *filePlan, why string, retry bool, err error) {
	var mode string
	var pageSize int
	var pages int64
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, "", false, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return nil, "", false, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return nil, "", false, err
	}
	if noFileCopy {
		return nil, "the file copy is switched off (tests of the backup API)", false, nil
	}
	if files.db == nil {
		return nil, "the database file could not be opened for reading", false, nil
	}
	if !samePath(files.db, files.path) {
		// Replaced between our open and SQLite's.
		return nil, "the database file was replaced", false, nil
	}
	// The file SQLite itself opened, by its own account: the sidecars
	// read below are named after it.
	if name, err := mainFile(ctx, conn); err != nil {
		return nil, "", false, err
	} else if name != files.path {
		return nil, fmt.Sprintf("SQLite reads %q, not %q", name, files.path), false, nil
	}
	plan = &filePlan{pageSize: pageSize, pages: pages}
	if mode != "wal" {
		// SHARED lock: the file stands still.
		return plan.fileHolds(files)
	}
	after, ashm, aerr := files.readIndex()
	if aerr == nil {
		if held, known := heldElsewhere(ashm); known && !held {
			return nil, "SQLite does not have the -shm file read here open", false, nil
		}
	}
	switch {
	case unix.Access(files.path+"-shm", unix.W_OK) != nil:
		// SQLite then reads the WAL without the shared index's locks
		// (its "unreliable" read-only -shm mode), which the reasoning
		// above does not cover.
		return nil, "the -shm file is read-only to this process", false, nil
	case aerr != nil:
		return nil, fmt.Sprintf("cannot read the wal-index: %v", aerr), false, nil
	case berr != nil:
		return nil, fmt.Sprintf("wal-index not readable before the snapshot: %v", berr), true, nil
	case bshm != ashm:
		return nil, "the -shm file was replaced", true, nil
	case before.Header != after.Header:
		return nil, "the wal-index changed", true, nil
	case after.Backfilled < before.Backfilled:
		// Only a restart or a recovery lowers it; a recovery may rebuild
		// an identical header.
		return nil, "the wal-index was rebuilt", true, nil
	case after.MaxFrame == 0:
		return plan.fileHolds(files) // an empty WAL: the file is all
	case after.PageSize != pageSize:
		return nil, fmt.Sprintf("wal-index page size %d, database %d", after.PageSize, pageSize), false, nil
	case int64(after.Pages) != pages:
		return nil, fmt.Sprintf("wal-index says %d pages, SQLite %d", after.Pages, pages), false, nil
	case before.Backfilled == after.MaxFrame:
		// Read-mark 0: all of the snapshot is in the database file.
		return plan.fileHolds(files)
	case after.Backfilled == after.MaxFrame:
		// A checkpoint finished in between: which read mark the
		// transaction took cannot be told.
		return nil, "a checkpoint ran", true, nil
	}
	wal, err := files.openWAL()
	if err != nil {
		return nil, fmt.Sprintf("cannot open the WAL: %v", err), false, nil
	}
	if held, known := heldElsewhere(wal); known && !held {
		return nil, "SQLite does not have the -wal file read here open", false, nil
	}
	if plan.frames, err = sqlitefile.WALFrames(wal, after); err != nil {
		return nil, fmt.Sprintf("WAL does not match the wal-index: %v", err), false, nil
	}
	return plan, "", false, nil
}

// fileHolds is the plan for a snapshot read from the database file
// alone, once the file is seen to hold every page SQLite counts: a
// wal-index that says the WAL is empty or checkpointed is then borne out
// by SQLite's own page count, not trusted alone.
func (plan *filePlan) fileHolds(files *sourceFiles) (*filePlan, string, bool, error) {
	fi, err := files.db.Stat()
	if err != nil {
		return nil, fmt.Sprintf("cannot stat the database file: %v", err), false, nil
	}
	if have := fi.Size() / int64(plan.pageSize); have < plan.pages {
		return nil, fmt.Sprintf("the database file holds %d pages, SQLite's snapshot %d", have, plan.pages), false, nil
	}
	return plan, "", false, nil
}

// mainFile is the database file SQLite has open on conn, by its own
// account (PRAGMA database_list: the full path, links resolved).
func mainFile(ctx context.Context, conn *sql.Conn) (string, error) {
	rows, err := conn.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int
		var name, file string
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", err
		}
		if name == "main" {
			return file, rows.Err()
		}
	}
	return "", rows.Err()
}

// noFileCopy makes every backup use the backup API, noKernelCopy the
// file copy read and write itself, and failSpotCheck the spot check
// fail; the tests of those paths set them.
var noFileCopy, noKernelCopy, failSpotCheck = false, false, false

// planned counts how snapshots were planned, for tests to report which
// paths a scenario took.
var planned = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

func countPlan(what string) {
	// Reasons may carry paths: keep the kinds only, so that a program
	// running many backups does not grow the map without bound.
	if i := strings.Index(what, ": open "); i >= 0 {
		what = what[:i]
	}
	planned.Lock()
	planned.m[what]++
	planned.Unlock()
}

// chunkBytes is the size of one read and one write of the file copy.
const chunkBytes = 1 << 20

// sendChunkBytes is how much one round of copyInKernel sends; it costs
// no memory of ours. The hash reads each round back once it is sent: with
// 1 MiB rounds it read right behind the writer and the copy of 1 GB took
// 0.36-0.41 s, with 64 MiB rounds 0.30-0.32 s (the whole backup 0.78-0.81
// s against 0.83-0.88 s). With 256 MiB rounds the hash started too late
// and ended after the fsync. Progress and cancellation come once a round:
// about 20 ms from the page cache, up to a second or so from a slow disk
// with a cold cache. A var: tests that need many rounds lower it.
var sendChunkBytes = 64 << 20

// copyFile writes the planned snapshot to the empty file tmp. Page 1 is
// marked rollback-journal (format bytes 1, as journal_mode=DELETE leaves
// them), so the copy is one self-contained file as it is written. A
// goroutine hashes the file behind the writer and may go on while the
// caller fsyncs: SHA-256 runs at about the speed of the copy itself, so
// in line it would double its time. Once moved (if not nil) reports that
// the application wrote to the source, the hash waits for the end of the
// copy instead, and then for wait (if not nil) to close (see followHash).
// The kernel copies where it can
// (copyInKernel); else one goroutine reads while this one writes.
func copyFile(ctx context.Context, files *sourceFiles, plan *filePlan, tmp string, progress func(done, total int), hashIt bool, moved func() bool, wait <-chan struct{}) (_ *followHash, err error) {
	out, err := os.OpenFile(tmp, os.O_RDWR, 0) // read back: page 1's patch
	if err != nil {
		return nil, fmt.Errorf("open backup %q: %w", tmp, err)
	}
	defer out.Close()
	if err := preallocate(out, plan.pages*int64(plan.pageSize)); err != nil {
		return nil, fileWriteError(err, filepath.Dir(tmp))
	}
	var hash *followHash // nil: nobody needs the hash (a compressed backup)
	if hashIt {
		if hash, err = newFollowHash(tmp, moved, wait); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			hash.Stop()
		}
	}()

	if !noKernelCopy {
		handled, err := copyInKernel(ctx, files, plan, out, hash, progress)
		if err != nil {
			return nil, err
		}
		if handled {
			countPlan("copied in the kernel")
			if err := out.Close(); err != nil {
				return nil, fileWriteError(err, filepath.Dir(tmp))
			}
			hash.close()
			return hash, nil
		}
	}

	ps := int64(plan.pageSize)
	per := max(int64(chunkBytes)/ps, 1)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type chunk struct {
		buf []byte
		off int64
	}
	free := make(chan []byte, 3)
	for range cap(free) {
		free <- make([]byte, per*ps)
	}
	toWrite := make(chan chunk, cap(free))

	go func() { // read
		defer close(toWrite)
		for first := int64(1); first <= plan.pages; first += per {
			n := min(per, plan.pages-first+1)
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			buf = buf[:n*ps]
			if err := readPages(files, plan, first, buf); err != nil {
				cancel(err)
				return
			}
			if first == 1 {
				if err := markRollback(buf); err != nil {
					cancel(&errPlan{"page 1: " + err.Error()})
					return
				}
			}
			if progress != nil {
				progress(int(first+n-1), int(plan.pages))
			}
			select {
			case toWrite <- chunk{buf, (first - 1) * ps}:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Write; after a failure, drain until the reader has stopped.
	failed := false
	for c := range toWrite {
		if !failed {
			if _, err := out.WriteAt(c.buf, c.off); err != nil {
				cancel(fileWriteError(err, filepath.Dir(tmp)))
				failed = true
			} else {
				hash.written(int64(len(c.buf)))
			}
		}
		free <- c.buf[:cap(c.buf)]
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, fileWriteError(err, filepath.Dir(tmp))
	}
	hash.close()
	return hash, nil
}

// followHash hashes a file as it is written, reading it back behind the
// writer (from the page cache) on its own descriptor.
//
// It follows the copy only while the source stands still. Hashing beside
// the copy keeps both cores busy for the copy's few tenths of a second,
// and on these 2-vCPU machines an application's commit that woke then
// waited behind one of our two threads for up to a scheduler tick: with
// a writer committing every 10 ms, 72 commits over 4 ms before the
// fsync's in 6 backups, against 15 with this (a probe that always hashed
// after the copy: 46 against 6; docs/PERFORMANCE.md,
// "Writer latency"). So once moved says that the source changed since
// the copy began, the hash waits for the copy to end (and for wait: the
// snapshot's row counts, run after the copy too) and then runs while
// the caller fsyncs, leaving the application a core during the kernel's
// copy (the read-and-write copy, where the kernel cannot, has a reader
// and a writer of its own). Where nobody writes, nobody waits, and it
// follows as before.
type followHash struct {
	f      *os.File
	moved  func() bool     // nil: never
	wait   <-chan struct{} // when hashing after the copy, first wait for this
	grow   chan int64      // lengths written, in order
	stop   chan struct{}
	done   chan struct{}
	sum    string
	err    error
	closed bool
	once   sync.Once
	hashed atomic.Int64 // bytes hashed so far, for tests to watch
}

func newFollowHash(path string, moved func() bool, wait <-chan struct{}) (*followHash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open backup %q: %w", path, err)
	}
	h := &followHash{f: f, moved: moved, wait: wait, grow: make(chan int64, 1<<16), stop: make(chan struct{}), done: make(chan struct{})}
	go h.run()
	return h, nil
}

// hashRound is the most the hash reads between two looks at stop and,
// while it follows the copy, at moved.
const hashRound = 16 << 20

func (h *followHash) run() {
	defer close(h.done)
	defer h.f.Close()
	// Hashing is the one part of the copy that needs a core for all of
	// it: on a thread of its own, at the lowest priority, so that the
	// application never waits for it. The thread ends with the goroutine.
	runtime.LockOSThread()
	lowerThreadPriority()
	sha := sha256.New()
	buf := make([]byte, chunkBytes)
	var behind int64 // written and not yet hashed
	copied := false  // the copy is complete
	after := false   // the source moved: wait for the end of the copy
	for {
		// Wait for more while there is nothing to hash, or while the
		// hash waits for the end of the copy.
		if !copied && (behind == 0 || after) {
			select {
			case n, ok := <-h.grow:
				if ok {
					behind += n
				} else {
					copied = true
				}
			case <-h.stop:
				h.err = context.Canceled
				return
			}
			continue
		}
		if behind == 0 { // copied and all hashed
			h.sum = hex.EncodeToString(sha.Sum(nil))
			return
		}
		if after && h.wait != nil {
			// Copied: the caller's other reader may still be at work
			// (the snapshot's row counts, run after the copy under a
			// writer): one thread at a time, so wait for it.
			countPlan("hash waited for the snapshot's hook")
			select {
			case <-h.wait:
				h.wait = nil
			case <-h.stop:
				h.err = context.Canceled
				return
			}
		}
		if !copied && h.moved != nil && h.moved() {
			after = true
			countPlan("hashed after the copy")
			continue
		}
		select {
		case <-h.stop:
			h.err = context.Canceled
			return
		default:
		}
		n := min(behind, hashRound)
		if got, err := io.CopyBuffer(sha, io.LimitReader(h.f, n), buf); err != nil || got != n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			h.err = fmt.Errorf("hash backup %q: %w", h.f.Name(), err)
			return
		}
		behind -= n
		h.hashed.Add(n)
	}
}

// written tells the hash that n more bytes follow in the file. The
// methods of a nil followHash do nothing.
func (h *followHash) written(n int64) {
	if h == nil {
		return
	}
	select {
	case h.grow <- n:
	case <-h.done: // it failed; Wait says why
	}
}

// close says the file is complete.
func (h *followHash) close() {
	if h != nil && !h.closed {
		h.closed = true
		close(h.grow)
	}
}

// Wait returns the hex SHA-256 of the whole file. If ctx ends first it
// stops the hash and returns ctx's error: after a copy under a writer
// the whole file may still be ahead of it (about 0.7 s a GB).
func (h *followHash) Wait(ctx context.Context) (string, error) {
	if h == nil {
		return "", nil
	}
	// A canceled run is canceled even when the hash is done too: select
	// would pick either at random.
	if err := ctx.Err(); err != nil {
		h.Stop()
		return "", err
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		h.Stop()
		return "", ctx.Err()
	}
	return h.sum, h.err
}

// Stop abandons the hash and waits until it no longer reads the file.
func (h *followHash) Stop() {
	if h == nil {
		return
	}
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// errPlan reports a snapshot the plan did not foresee: the backup API
// copies it instead.
type errPlan struct{ msg string }

func (e *errPlan) Error() string { return e.msg }

// readPages fills buf with the pages from first on: each the newest WAL
// frame's image if the page has one, else the database file's.
func readPages(files *sourceFiles, plan *filePlan, first int64, buf []byte) error {
	ps := int64(plan.pageSize)
	n, err := files.db.ReadAt(buf, (first-1)*ps)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read source %q: %w", files.path, err)
	}
	for i := int64(0); i < int64(len(buf))/ps; i++ {
		page := buf[i*ps : (i+1)*ps]
		if off, ok := plan.frames[uint32(first+i)]; ok {
			if _, err := files.wal.ReadAt(page, off); err != nil {
				return fmt.Errorf("read source %q: %w", files.path+"-wal", err)
			}
		} else if (i+1)*ps > int64(n) {
			if err := plan.beyondFile(first + i); err != nil {
				return err
			}
			clear(page)
		}
	}
	return nil
}

// beyondFile judges page p, which is not in the WAL and which the
// database file does not reach: only the pending-byte page may be (never
// written by SQLite, so beyond the file's end while the database grows in
// the WAL; SQLite reads it as zeros).
func (plan *filePlan) beyondFile(p int64) error {
	if p != pendingBytePage(plan.pageSize) {
		return &errPlan{fmt.Sprintf("page %d is in neither the database file nor the WAL", p)}
	}
	return nil
}

// pendingBytePage is the page holding byte 2^30 of the file, which SQLite
// never uses (its locks live there).
func pendingBytePage(pageSize int) int64 { return 0x40000000/int64(pageSize) + 1 }

// markRollback sets page 1's file format bytes to 1 (rollback journal),
// which is all PRAGMA journal_mode=DELETE changes on a WAL database.
func markRollback(page1 []byte) error {
	if len(page1) < sqlitefile.HeaderSize || string(page1[:16]) != sqlitefile.Magic {
		return errors.New("page 1 of the snapshot has no SQLite header")
	}
	for _, i := range []int{18, 19} {
		switch page1[i] {
		case 1:
		case 2:
			page1[i] = 1
		default:
			return fmt.Errorf("unknown file format version %d in page 1", page1[i])
		}
	}
	return nil
}

// spotCheck compares pages of the written copy with SQLite's own view of
// the snapshot (the sqlite_dbpage table, read in the same transaction):
// page 1, the last page, every page taken from the WAL (up to a bound)
// and pages spread over the file. It guards the file copy's reasoning,
// not the disk; integrity_check still reads the whole copy.
func spotCheck(ctx context.Context, conn *sql.Conn, plan *filePlan, tmp string) error {
	if failSpotCheck {
		return errors.New("made to fail by a test")
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	pick := map[int64]bool{1: true, plan.pages: true}
	for p := range plan.frames {
		if len(pick) >= 64 {
			break
		}
		pick[int64(p)] = true
	}
	for i := int64(1); i <= 64; i++ {
		pick[1+(plan.pages-1)*i/64] = true
	}
	pending := pendingBytePage(plan.pageSize)
	mine := make([]byte, plan.pageSize)
	stmt, err := conn.PrepareContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = ?")
	if err != nil {
		return err
	}
	defer stmt.Close()
	for p := range pick {
		if p == pending || p < 1 || p > plan.pages {
			continue
		}
		var theirs []byte
		if err := stmt.QueryRowContext(ctx, p).Scan(&theirs); err != nil {
			return fmt.Errorf("read page %d through SQLite: %w", p, err)
		}
		if _, err := f.ReadAt(mine, (p-1)*int64(plan.pageSize)); err != nil {
			return fmt.Errorf("read page %d of the copy: %w", p, err)
		}
		if p == 1 && len(theirs) == len(mine) {
			if err := markRollback(theirs); err != nil {
				return err
			}
		}
		if !bytes.Equal(mine, theirs) {
			return fmt.Errorf("page %d of the copy differs from the snapshot", p)
		}
	}
	return nil
}
