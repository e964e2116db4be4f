package litestream

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// Options choose a point and where it is built.
type Options struct {
	// TXID restores the point that ends at this TXID; At the newest
	// before this time (Litestream's -txid and -timestamp). Neither:
	// the newest point.
	TXID ltx.TXID
	At   time.Time
	// TempDir holds the private directory the database is built in
	// (default: the system temp dir).
	TempDir string
	// Quick checks with quick_check instead of integrity_check.
	Quick bool
	// Keep keeps the checked database (Restored.Path) until Release.
	Keep bool
	// Progress is told the pages written; Check follows the SQLite check.
	Progress func(done, total int64)
	Check    func(done, total int64, finished bool)
}

// Restored is a point built from a replica and checked.
type Restored struct {
	Location string    `json:"location"`
	TXID     ltx.TXID  `json:"txid"`
	Created  time.Time `json:"created"`
	// Files are the plan's files, in the order they were merged.
	Files    []string `json:"files"`
	PageSize int      `json:"page_size"`
	Pages    int64    `json:"pages"`
	// State is "ok" when the files carry Litestream's post-apply
	// checksum and the pages written add up to it, "" when they do not
	// carry one (Litestream v0.5 writes none).
	State string        `json:"state_checksum,omitempty"`
	Check verify.Result `json:"check"`
	// Path is the checked database (Options.Keep), in a private
	// directory that Release removes.
	Path  string        `json:"-"`
	Write time.Duration `json:"-"`
	held  *fsx.HeldDir
}

// Release removes the kept database and its directory.
func (m *Restored) Release() {
	if m != nil && m.held != nil {
		m.held.Release()
		m.held = nil
	}
}

// damaged is the verdict on a replica that cannot give the point
// because of file: a failed verification (exit 3) naming it.
func damaged(file, format string, args ...any) error {
	return &verify.FailedError{Result: verify.Result{Path: file, Check: Kind, Problems: []string{fmt.Sprintf(format, args...)}}}
}

// openConcurrency bounds the files opened at once (Litestream: 32).
const openConcurrency = 32

// input is one plan file being merged.
type input struct {
	f    File
	name string // for messages
	rc   io.ReadCloser
	dec  *ltx.Decoder
	hdr  ltx.Header
	cur  uint32 // page number in data; 0 when the page block ended
	data []byte
	// A piped input is decoded by a goroutine of its own (pipe), a batch
	// of pages ahead of the merge; the others as the merge reads them.
	batches, free chan *batch
	b             *batch
	next          int // index in b of the page after data's
}

// batch is a run of decoded pages of one input, then the end of its page
// block (err io.EOF, the file's trailer and checksum checked) or the
// error that stopped the decoding.
type batch struct {
	pgnos []uint32
	pages []byte
	err   error
}

// Pipes: the largest files of a plan (a snapshot, mostly) are decoded
// beside the merge, which LZ4 decoding and the CRC-64 of every byte
// would otherwise keep to one core; each takes two batches of
// pipeBatch bytes of pages.
// (Variables: the tests pipe every file, in batches of a few pages.)
var (
	maxPipes  = 4
	pipeMin   = int64(4 << 20)
	pipeBatch = 256 << 10
)

// decodePage decodes in's next page into data: its number, 0 at the end
// of the page block.
func (in *input) decodePage(prev uint32, data []byte) (uint32, error) {
	var ph ltx.PageHeader
	err := in.dec.DecodePage(&ph, data)
	if err == io.EOF {
		return 0, nil
	}
	if err != nil {
		return 0, damaged(in.name, "decode page after %d: %v", prev, err)
	}
	if ph.Pgno <= prev {
		return 0, damaged(in.name, "page %d after page %d: pages out of order", ph.Pgno, prev)
	}
	return ph.Pgno, nil
}

// finish checks in's page index, trailer and file checksum, once its
// page block ended.
func (in *input) finish() error {
	if err := in.dec.Close(); err != nil {
		return damaged(in.name, "%v", err)
	}
	return nil
}

func (in *input) advance() error {
	if in.batches == nil {
		p, err := in.decodePage(in.cur, in.data)
		in.cur = p
		return err
	}
	for in.b == nil || in.next == len(in.b.pgnos) {
		if in.b != nil {
			if in.b.err != nil {
				if in.b.err == io.EOF {
					in.cur = 0
					return nil
				}
				return in.b.err
			}
			in.free <- in.b
		}
		b, ok := <-in.batches
		if !ok {
			return errors.New("decoder of " + in.name + " stopped") // cancelled
		}
		in.b, in.next = b, 0
	}
	ps := len(in.data)
	in.cur = in.b.pgnos[in.next]
	in.data = in.b.pages[in.next*ps : (in.next+1)*ps]
	in.next++
	return nil
}

// pipe starts in's decoding goroutine. It ends at the end of the file,
// at an error (delivered in the last batch) or when stop is closed.
func (in *input) pipe(ps int, stop <-chan struct{}, wg *sync.WaitGroup) {
	n := max(1, pipeBatch/ps)
	in.batches, in.free = make(chan *batch, 1), make(chan *batch, 2)
	for range 2 {
		in.free <- &batch{pgnos: make([]uint32, 0, n), pages: make([]byte, n*ps)}
	}
	wg.Go(func() {
		defer close(in.batches)
		var prev uint32
		for {
			var b *batch
			select {
			case b = <-in.free:
			case <-stop:
				return
			}
			b.pgnos = b.pgnos[:0]
			for len(b.pgnos) < n {
				off := len(b.pgnos) * ps
				p, err := in.decodePage(prev, b.pages[off:off+ps])
				if err == nil && p == 0 {
					err = io.EOF
					if ferr := in.finish(); ferr != nil {
						err = ferr
					}
				}
				if err != nil {
					b.err = err
					break
				}
				b.pgnos = append(b.pgnos, p)
				prev = p
			}
			select {
			case in.batches <- b:
			case <-stop:
				return
			}
			if b.err != nil {
				return
			}
		}
	})
}

// Restore builds the point o asks for (see Plan) in a private temp file,
// checks it and, with Keep, returns it. The files are streamed and
// merged page by page (one page and a 64 KiB buffer per file); every
// file's header must match its name and continue the TXIDs of the one
// before, its LTX checksum and trailer must hold, and the database must
// pass integrity_check.
func (r *Replica) Restore(ctx context.Context, o Options) (_ *Restored, err error) {
	if !o.At.IsZero() {
		if err := r.fixTimes(ctx); err != nil {
			return nil, err
		}
	}
	plan, err := r.Plan(o.TXID, o.At)
	var ge *GapError
	switch {
	case errors.As(err, &ge):
		return nil, damaged(r.Where(ge.File), "%v", ge)
	case errors.Is(err, ErrNoPoint) && o.TXID != 0:
		// TXIDs below the point in no file: a file is missing.
		for _, g := range r.Summarize().Gaps {
			if g.From <= o.TXID {
				if f, ok := r.firstFrom(g.To + 1); ok {
					return nil, damaged(r.Where(f), "TXIDs %s to %s are in no file: TXID %s cannot be restored past them", g.From, g.To, o.TXID)
				}
			}
		}
		fallthrough
	case errors.Is(err, ErrNoPoint):
		what := "the newest point"
		if o.TXID != 0 {
			what = "TXID " + o.TXID.String()
		} else if !o.At.IsZero() {
			what = "a point before " + o.At.Format(time.RFC3339)
		}
		return nil, fmt.Errorf("restore litestream replica %q: %s: %w", r.Location, what, ErrNoPoint)
	case err != nil:
		return nil, err
	}
	last := plan[len(plan)-1]
	res := &Restored{Location: r.Location, TXID: last.MaxTXID, Created: last.Created}
	for _, f := range plan {
		res.Files = append(res.Files, f.Name())
	}

	held, err := fsx.MkdirHeld(o.TempDir, fsx.CheckDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("create private dir in %q: %w", o.TempDir, fsx.PathErr(err))
	}
	defer func() {
		if err != nil || !o.Keep {
			held.Release()
		}
	}()

	ins, err := r.openAll(ctx, plan)
	defer func() {
		for _, in := range ins {
			if in != nil && in.rc != nil {
				in.rc.Close()
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	// ltx's decoder allocates every page frame it reads (a database's
	// worth of garbage) beside 20 MiB of live download parts: at the
	// default GOGC the heap would reach twice the live set. A lower
	// percentage keeps the peak near what is live, for a few GC cycles
	// more.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	started := time.Now()
	tmp := filepath.Join(held.Path, "litestream-"+last.MaxTXID.String()+".db")
	tf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database in %q: %w", held.Path, fsx.PathErr(err))
	}
	defer tf.Close()
	if err := merge(ctx, ins, tf, res, o.Progress); err != nil {
		return nil, err
	}
	if err := tf.Sync(); err != nil {
		return nil, fmt.Errorf("fsync database %q: %w", tmp, fsx.PathErr(err))
	}
	if err := tf.Close(); err != nil {
		return nil, fmt.Errorf("write database %q: %w", tmp, fsx.PathErr(err))
	}
	res.Write = time.Since(started)

	vr, err := verify.File(ctx, tmp, verify.Options{Quick: o.Quick, Progress: o.Check})
	if err != nil {
		return nil, err
	}
	vr.Path = r.Location
	vr.Replica = res.Describe()
	res.Check = vr
	if !vr.OK {
		vr.Problems = append([]string{fmt.Sprintf("restored point %s (from %d files)", last.MaxTXID, len(plan))}, vr.Problems...)
		return nil, &verify.FailedError{Result: vr}
	}
	if o.Keep {
		res.Path, res.held = tmp, held
	}
	return res, nil
}

// openAll opens every plan file at once (a remote download starts on
// open) and reads its header.
func (r *Replica) openAll(ctx context.Context, plan []File) ([]*input, error) {
	// The largest file (the snapshot, mostly) is downloaded in parallel
	// ranges; the others, read at the same time page by page, one
	// stream each, so memory does not grow with the plan (on S3 20 MiB
	// of parts per parallel download).
	big := 0
	for i, f := range plan {
		if f.Size > plan[big].Size {
			big = i
		}
	}
	ins := make([]*input, len(plan))
	errs := make([]error, len(plan))
	sem := make(chan struct{}, openConcurrency)
	var wg sync.WaitGroup
	for i, f := range plan {
		ins[i] = &input{f: f, name: r.Where(f)}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			in := ins[i]
			rc, err := r.st.open(ctx, f, i == big)
			if err != nil {
				errs[i] = openErr(in.name, err)
				return
			}
			in.rc = rc
			in.dec = ltx.NewDecoder(newGuard(bufio.NewReaderSize(rc, 64<<10)))
			in.dec.SetRetainPageIndex(false)
			if err := in.dec.DecodeHeader(); err != nil {
				errs[i] = damaged(in.name, "header: %v", err)
				return
			}
			in.hdr = in.dec.Header()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return ins, err
		}
	}
	for i, in := range ins {
		h := in.hdr
		if h.MinTXID != in.f.MinTXID || h.MaxTXID != in.f.MaxTXID {
			return ins, damaged(in.name, "its header says TXIDs %s-%s", h.MinTXID, h.MaxTXID)
		}
		if i == 0 {
			if !h.IsSnapshot() {
				return ins, damaged(in.name, "the first file of the restore starts at TXID %s, not a snapshot: TXIDs before it are in no file", h.MinTXID)
			}
			continue
		}
		prev := ins[i-1].hdr
		if h.PageSize != prev.PageSize {
			return ins, damaged(in.name, "%d-byte pages, %s before it has %d", h.PageSize, ins[i-1].f.Name(), prev.PageSize)
		}
		if !ltx.IsContiguous(prev.MaxTXID, h.MinTXID, h.MaxTXID) {
			return ins, damaged(in.name, "starts at TXID %s, %s before it ends at %s", h.MinTXID, ins[i-1].f.Name(), prev.MaxTXID)
		}
	}
	return ins, nil
}

// openErr: a file listed but gone is damage to the replica, anything
// else a failure to read it.
func openErr(name string, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, remote.ErrNotExist) {
		return damaged(name, "missing (listed, then gone: retention may have removed it; try again)")
	}
	return fmt.Errorf("open %q: %w", name, err)
}

// merge writes pages 1..commit of the last file's header, each from the
// newest file holding it (the lock-byte page as zeros), and checks every
// file to its end.
func merge(ctx context.Context, ins []*input, w io.Writer, res *Restored, progress func(done, total int64)) error {
	last := ins[len(ins)-1]
	commit := last.hdr.Commit
	ps := last.hdr.PageSize
	res.PageSize, res.Pages = int(ps), int64(commit)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	bySize := make([]*input, len(ins))
	copy(bySize, ins)
	slices.SortStableFunc(bySize, func(a, b *input) int { return cmp.Compare(b.f.Size, a.f.Size) })
	for i, in := range bySize {
		if i < maxPipes && in.f.Size >= pipeMin {
			in.pipe(int(ps), stop, &wg)
		}
	}
	for _, in := range ins {
		in.data = make([]byte, ps)
		if err := in.advance(); err != nil {
			return err
		}
	}
	track := !last.hdr.NoChecksum()
	state := ltx.ChecksumFlag
	lock := ltx.LockPgno(ps)
	zero := make([]byte, ps)
	bw := bufio.NewWriterSize(w, 1<<20)
	for p := uint32(1); p <= commit; p++ {
		if p%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if progress != nil {
				progress(int64(p), int64(commit))
			}
		}
		var page []byte
		for k := len(ins) - 1; k >= 0; k-- {
			if ins[k].cur == p {
				page = ins[k].data
				break
			}
		}
		switch {
		case p == lock:
			page = zero
		case page == nil:
			at := last
			if p <= ins[0].hdr.Commit {
				at = ins[0]
			}
			return damaged(at.name, "page %d of %d is in no file of the restore", p, commit)
		}
		if track && p != lock {
			state = ltx.ChecksumFlag | (state ^ ltx.ChecksumPage(p, page))
		}
		if _, err := bw.Write(page); err != nil {
			return fmt.Errorf("write database: %w", fsx.PathErr(err))
		}
		for _, in := range ins {
			if in.cur == p {
				if err := in.advance(); err != nil {
					return err
				}
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write database: %w", fsx.PathErr(err))
	}
	// Pages past the final size (a file of a larger database) are read
	// to the end, and every file's index, trailer and checksum checked.
	for _, in := range ins {
		for in.cur != 0 {
			if err := in.advance(); err != nil {
				return err
			}
		}
		if in.batches == nil {
			if err := in.finish(); err != nil {
				return err
			}
		}
	}
	if progress != nil {
		progress(int64(commit), int64(commit))
	}
	if want := last.dec.Trailer().PostApplyChecksum; track && want != 0 {
		if state != want {
			return damaged(last.name, "the restored pages add up to checksum %s, its trailer says %s", state, want)
		}
		res.State = "ok"
	}
	return nil
}

// Describe is the point as results name it.
func (m *Restored) Describe() *verify.Replica {
	return &verify.Replica{Kind: Kind, TXID: m.TXID.String(), Time: m.Created, Files: m.Files, StateChecksum: m.State}
}

// firstFrom is a file that starts at txid (the lowest level's).
func (r *Replica) firstFrom(txid ltx.TXID) (File, bool) {
	for level := 0; level <= SnapshotLevel; level++ {
		for _, f := range r.Levels[level] {
			if f.MinTXID == txid {
				return f, true
			}
		}
	}
	return File{}, false
}
