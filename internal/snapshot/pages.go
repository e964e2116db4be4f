package snapshot

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/sys/fault"
)

// Pages is one consistent snapshot of a live database, read page by page
// by a caller instead of copied into a file: the increments of an
// incremental chain hash every page and keep the changed ones. It is
// read as the file copy reads (filecopy.go): one read transaction pins
// the snapshot, the same plan with the same cross-checks says whether
// the database file and the WAL can be read directly, and the same spot
// check compares pages with SQLite's own view (sqlite_dbpage) in that
// transaction. Where the plan cannot be proven, every page is read
// through sqlite_dbpage in the same transaction instead. Page 1 is handed
// over as a self-contained copy has it (rollback journal format bytes).
// The source is opened read-only, as for Run.
type Pages struct {
	Source   string // as given, made absolute
	PageSize int
	Count    int64 // pages in the snapshot
	// Via says how the pages are read: "file" (the database file and its
	// WAL, under the plan's proof) or "sqlite_dbpage"; Why says why not
	// the file, when not.
	Via string
	Why string

	real    string
	busy    time.Duration
	files   *sourceFiles
	db      *sql.DB
	conn    *sql.Conn
	plan    *filePlan
	faulted bool // after a fault the connection is dropped unused
	done    bool
	closed  bool
}

// Ways Pages reads (Pages.Via).
const (
	ViaFile   = "file"
	ViaSQLite = "sqlite_dbpage"
)

// PagesOptions tune OpenPages.
type PagesOptions struct {
	// BusyTimeout is how long to wait for a writer's lock on the source.
	BusyTimeout time.Duration
	// ThroughSQLite reads every page through sqlite_dbpage: the retry
	// after ErrPlan, and tests.
	ThroughSQLite bool
}

// ErrPlan is wrapped by Read's error when what it read contradicted the
// file plan (the spot check, or a page in neither the database file nor
// the WAL). Nothing read may be used; the caller opens the snapshot again
// with ThroughSQLite. It is not expected: it guards the plan's reasoning.
var ErrPlan = errors.New("the file read of the snapshot did not hold")

// OpenPages checks the source as Run does, opens it read-only and begins
// the read transaction that pins the snapshot. Close ends it.
func OpenPages(ctx context.Context, src string, opts PagesOptions) (_ *Pages, err error) {
	given, real, _, err := checkSource(src)
	if err != nil {
		return nil, err
	}
	p := &Pages{Source: given, real: real, busy: opts.BusyTimeout}
	defer func() {
		if err != nil {
			p.Close()
			if given != real {
				err = linkError(err, given, real)
			}
		}
	}()
	// Opened before SQLite opens the source and closed after it (Close):
	// see sourceFiles.
	p.files = openSourceFiles(real)
	uri, err := sqlitefile.URI(real, url.Values{
		"mode":    {"ro"},
		"_pragma": {"busy_timeout(" + strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10) + ")", mmapPragma()},
	})
	if err != nil {
		return nil, fmt.Errorf("open source %q: %w", real, err)
	}
	if p.db, err = sql.Open("sqlite", uri); err != nil {
		return nil, fmt.Errorf("open source %q: %w", real, err)
	}
	if p.conn, err = p.db.Conn(ctx); err != nil {
		return nil, sourceError(ctx, real, "open source", err, opts.BusyTimeout)
	}
	err = fault.Guard(func() error {
		var err error
		p.plan, p.Why, err = beginSnapshot(ctx, p.conn, p.files)
		return err
	})
	if errors.Is(err, fault.ErrFault) {
		p.faulted = true
		return nil, fmt.Errorf("read source %q: %w", real, err)
	}
	if err != nil {
		return nil, sourceError(ctx, real, "read source", err, opts.BusyTimeout)
	}
	if opts.ThroughSQLite && p.plan != nil {
		p.plan, p.Why = nil, "asked to read through SQLite"
	}
	if p.plan != nil {
		p.Via, p.PageSize, p.Count = ViaFile, p.plan.pageSize, p.plan.pages
		return p, nil
	}
	p.Via = ViaSQLite
	err = fault.Guard(func() error {
		if err := p.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&p.PageSize); err != nil {
			return err
		}
		return p.conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&p.Count)
	})
	if errors.Is(err, fault.ErrFault) {
		p.faulted = true
		return nil, fmt.Errorf("read source %q: %w", real, err)
	}
	if err != nil {
		return nil, sourceError(ctx, real, "read source", err, opts.BusyTimeout)
	}
	return p, nil
}

// Read calls fn with the snapshot's pages in order, a run of whole pages
// at a time starting at page first; buf is reused once fn returns. It
// may be called once. An error wrapping ErrPlan means that nothing read
// may be used.
func (p *Pages) Read(ctx context.Context, fn func(first int64, buf []byte) error) error {
	if p.done {
		return errors.New("snapshot pages read twice")
	}
	p.done = true
	var err error
	if p.plan != nil {
		err = p.readFile(ctx, fn)
	} else {
		err = fault.Guard(func() error { return p.readSQLite(ctx, fn) })
	}
	var ep *errPlan
	switch {
	case errors.Is(err, fault.ErrFault):
		p.faulted = true
		return fmt.Errorf("read source %q: %w", p.real, err)
	case errors.As(err, &ep):
		countPlan("pages: " + ep.msg)
		return fmt.Errorf("read source %q: %w: %s", p.real, ErrPlan, ep.msg)
	}
	return err
}

func (p *Pages) readFile(ctx context.Context, fn func(first int64, buf []byte) error) error {
	plan := p.plan
	ps := int64(plan.pageSize)
	per := max(int64(chunkBytes)/ps, 1)
	buf := make([]byte, per*ps)
	// The spot check's pages, as spotCheck picks them; their hashes as
	// read are compared with SQLite's view once all is read, so that a
	// file that moved under the read is caught as the file copy catches
	// it.
	pick := spotPages(plan)
	seen := make(map[int64][32]byte, len(pick))
	for first := int64(1); first <= plan.pages; first += per {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(per, plan.pages-first+1)
		b := buf[:n*ps]
		if err := readPages(p.files, plan, first, b); err != nil {
			return err
		}
		if first == 1 {
			if err := markRollback(b); err != nil {
				return &errPlan{"page 1: " + err.Error()}
			}
		}
		for i := range n {
			if pick[first+i] {
				seen[first+i] = sha256.Sum256(b[i*ps : (i+1)*ps])
			}
		}
		if err := fn(first, b); err != nil {
			return err
		}
	}
	return fault.Guard(func() error { return p.spotCheck(ctx, seen) })
}

// spotPages are the pages spotCheck compares: page 1, the last page,
// up to 64 taken from the WAL and 64 spread over the file; never the
// lock-byte page.
func spotPages(plan *filePlan) map[int64]bool {
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
	delete(pick, pendingBytePage(plan.pageSize))
	return pick
}

func (p *Pages) spotCheck(ctx context.Context, seen map[int64][32]byte) error {
	if failSpotCheck {
		return &errPlan{"spot check: made to fail by a test"}
	}
	stmt, err := p.conn.PrepareContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = ?")
	if err != nil {
		return err
	}
	defer stmt.Close()
	for pg, mine := range seen {
		var theirs []byte
		if err := stmt.QueryRowContext(ctx, pg).Scan(&theirs); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &errPlan{fmt.Sprintf("spot check: read page %d through SQLite: %v", pg, err)}
		}
		if pg == 1 {
			if err := markRollback(theirs); err != nil {
				return &errPlan{"spot check: " + err.Error()}
			}
		}
		if sha256.Sum256(theirs) != mine {
			return &errPlan{fmt.Sprintf("spot check: page %d as read differs from the snapshot", pg)}
		}
	}
	return nil
}

func (p *Pages) readSQLite(ctx context.Context, fn func(first int64, buf []byte) error) error {
	ps := int64(p.PageSize)
	per := max(int64(chunkBytes)/ps, 1)
	buf := make([]byte, 0, per*ps)
	rows, err := p.conn.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage")
	if err != nil {
		return sourceError(ctx, p.real, "read source", err, p.busy)
	}
	defer rows.Close()
	next, first := int64(1), int64(1)
	for rows.Next() {
		var pg int64
		var data sql.RawBytes
		if err := rows.Scan(&pg, &data); err != nil {
			return fmt.Errorf("read source %q: %w", p.real, err)
		}
		if pg != next || int64(len(data)) != ps {
			return fmt.Errorf("read source %q: sqlite_dbpage gave page %d of %d bytes where page %d of %d was due", p.real, pg, len(data), next, ps)
		}
		buf = append(buf, data...)
		if next == 1 {
			if err := markRollback(buf); err != nil {
				return fmt.Errorf("read source %q: %w", p.real, err)
			}
		}
		next++
		if int64(len(buf)) == per*ps {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(first, buf); err != nil {
				return err
			}
			buf, first = buf[:0], next
		}
	}
	if err := rows.Err(); err != nil {
		return sourceError(ctx, p.real, "read source", err, p.busy)
	}
	if next != p.Count+1 {
		return fmt.Errorf("read source %q: sqlite_dbpage gave %d pages, the snapshot has %d", p.real, next-1, p.Count)
	}
	if len(buf) > 0 {
		return fn(first, buf)
	}
	return nil
}

// Snapshot calls fn with a connection that sees exactly the snapshot the
// pages are read from (inside the read transaction that pins it), as
// Options.Snapshot is for Run: row counts and content hashes. Call it
// before or after Read, not during.
func (p *Pages) Snapshot(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	err := fault.Guard(func() error { return fn(ctx, p.conn) })
	if errors.Is(err, fault.ErrFault) {
		p.faulted = true
		return fmt.Errorf("read source %q: %w", p.real, err)
	}
	if err != nil {
		return sourceError(ctx, p.real, "read source", err, p.busy)
	}
	return nil
}

// Close ends the read transaction and closes the source, the file
// descriptors last (their POSIX locks are SQLite's too). A second call
// does nothing.
func (p *Pages) Close() {
	if p.faulted || p.closed {
		return // after a fault SQLite's state is undefined: drop it, locks and all
	}
	p.closed = true
	if p.conn != nil {
		p.conn.ExecContext(context.Background(), "ROLLBACK")
		p.conn.Close()
	}
	if p.db != nil {
		p.db.Close()
	}
	if p.files != nil {
		p.files.Close()
	}
}
