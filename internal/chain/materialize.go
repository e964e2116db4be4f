package chain

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/verify"
)

// MaterializeOptions say where a point is materialized.
type MaterializeOptions struct {
	// Path is the database to create; it must not exist. Empty: the
	// point is only checked, in a temp file in TempDir that is removed.
	Path    string
	TempDir string // default os.TempDir()
	// Quick runs quick_check instead of integrity_check.
	Quick bool
	// Deep also compares the materialized database's row counts and
	// content hash with the point's manifest (verify --deep); DeepOf is
	// the point's stored file, beside which the manifest lies (default
	// the last point's Path), Identities open a sealed one.
	Deep       bool
	DeepOf     string
	Identities []age.Identity
}

// Materialized is a materialized, checked point.
type Materialized struct {
	Path  string `json:"path,omitempty"` // empty when only checked
	Point string `json:"point"`          // the point's file
	Pages int64  `json:"pages"`
	State string `json:"state_checksum"`
	// FromBase and FromIncrements count the pages written from the full
	// and from the increments.
	FromBase       int64         `json:"from_base"`
	FromIncrements int64         `json:"from_increments"`
	Check          verify.Result `json:"check"`
	// Write is the time spent writing the file, Check the time of the
	// SQLite check.
	Write     time.Duration `json:"-"`
	CheckTime time.Duration `json:"-"`
}

// damaged is the verdict on a chain that cannot be materialized because
// of file: a failed verification (exit 3), naming the file at fault.
func damaged(file, format string, args ...any) error {
	return &verify.FailedError{Result: verify.Result{Path: file, Check: "chain", Problems: []string{fmt.Sprintf(format, args...)}}}
}

// Validate checks that points form one chain, as their manifests say:
// a full, then its increments in order, each naming its parent and
// base, continuing its parent's state and page size. An error names the
// point whose manifest breaks the chain.
func Validate(points []Point) error {
	if len(points) == 0 {
		return errors.New("materialize: no point given")
	}
	base := points[0]
	if base.Chain.Kind != manifest.KindFull || base.Chain.Seq != 0 {
		return damaged(base.Path, "the chain does not start with a full backup (kind %q, seq %d)", base.Chain.Kind, base.Chain.Seq)
	}
	for i, p := range points {
		c := p.Chain
		if _, err := checksum(c.State); err != nil {
			return damaged(p.Path, "manifest: %v", err)
		}
		if !ltx.IsValidPageSize(uint32(c.PageSize)) || c.Pages < 1 || c.Pages > int64(^uint32(0)) {
			return damaged(p.Path, "manifest: %d pages of %d bytes", c.Pages, c.PageSize)
		}
		if i == 0 {
			continue
		}
		parent := points[i-1]
		switch {
		case c.Kind != manifest.KindIncrement || c.Seq != i:
			return damaged(p.Path, "manifest: kind %q, seq %d where increment %d of %s was due", c.Kind, c.Seq, i, base.Name())
		case c.Parent != parent.Name():
			return damaged(p.Path, "manifest: its parent is %s, not %s", c.Parent, parent.Name())
		case c.Base != base.Name():
			return damaged(p.Path, "manifest: its full is %s, not %s", c.Base, base.Name())
		case c.PreState != parent.Chain.State:
			return damaged(p.Path, "manifest: it applies to state %s, its parent %s ends in %s", c.PreState, parent.Name(), parent.Chain.State)
		case c.PageSize != base.Chain.PageSize:
			return damaged(p.Path, "manifest: %d-byte pages in a chain of %d-byte pages", c.PageSize, base.Chain.PageSize)
		}
	}
	return nil
}

// Resolve returns the chain of the point named target (a base name):
// its full, then every increment up to it, following parents through
// points (by base name). A missing point is named.
func Resolve(points map[string]Point, target string) ([]Point, error) {
	var rev []Point
	name := target
	for {
		p, ok := points[name]
		if !ok {
			if name == target {
				return nil, fmt.Errorf("point %s not found", target)
			}
			return nil, damaged(name, "missing: %s needs it", target)
		}
		rev = append(rev, p)
		if p.Chain.Kind == manifest.KindFull {
			break
		}
		if p.Chain.Parent == "" || len(rev) > 1<<16 {
			return nil, damaged(p.Path, "manifest names no parent")
		}
		name = p.Chain.Parent
	}
	out := make([]Point, len(rev))
	for i, p := range rev {
		out[len(rev)-1-i] = p
	}
	return out, Validate(out)
}

// increment is one LTX file being merged.
type increment struct {
	point    Point
	f        *os.File
	dec      *ltx.Decoder
	hdr      ltx.Header
	cur      uint32 // page number of the page in data; 0 once all are read
	data     []byte
	validTo  uint32 // a later point shrank the database to this: pages above are stale
	pageSeen uint32
}

func (in *increment) advance() error {
	var ph ltx.PageHeader
	err := in.dec.DecodePage(&ph, in.data)
	if err == io.EOF {
		in.cur = 0
		return nil
	}
	if err != nil {
		return damaged(in.point.Path, "page after %d: %v", in.pageSeen, err)
	}
	if ph.Pgno <= in.pageSeen || ph.Pgno > in.hdr.Commit {
		return damaged(in.point.Path, "page %d after page %d, in a database of %d pages", ph.Pgno, in.pageSeen, in.hdr.Commit)
	}
	in.cur, in.pageSeen = ph.Pgno, ph.Pgno
	return nil
}

// open checks an increment's file against its manifest and reads its
// first page.
func (in *increment) open(parentState string) error {
	p := in.point
	f, err := os.Open(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return damaged(p.Path, "missing")
	}
	if err != nil {
		return fmt.Errorf("open increment %q: %w", p.Path, fsx.PathErr(err))
	}
	in.f = f
	if p.SHA256 != "" {
		// Before the decoder sees it: a damaged frame size could make it
		// allocate up to 4 GiB for one page.
		sum, err := manifest.FileSHA256(p.Path)
		if err != nil {
			return err
		}
		if sum != p.SHA256 {
			return damaged(p.Path, "sha256 mismatch: file has %s, its .sha256 says %s (the file changed since it was written)", sum, p.SHA256)
		}
	}
	// A small buffer each: a restore may merge many increments, and
	// memory stays bounded by their number, not their size.
	in.dec = ltx.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	in.dec.SetRetainPageIndex(false)
	if err := in.dec.DecodeHeader(); err != nil {
		return damaged(p.Path, "LTX header: %v", err)
	}
	h := in.dec.Header()
	in.hdr = h
	c := p.Chain
	switch {
	case int(h.PageSize) != c.PageSize || int64(h.Commit) != c.Pages:
		return damaged(p.Path, "LTX header: %d pages of %d bytes, its manifest says %d of %d", h.Commit, h.PageSize, c.Pages, c.PageSize)
	case h.MinTXID != txid(c.Seq) || h.MaxTXID != txid(c.Seq):
		return damaged(p.Path, "LTX header: transactions %s-%s, increment %d is %s", h.MinTXID, h.MaxTXID, c.Seq, txid(c.Seq))
	case !h.NoChecksum() && h.PreApplyChecksum.String() != parentState:
		return damaged(p.Path, "LTX header: applies to state %s, its parent ends in %s", h.PreApplyChecksum, parentState)
	}
	in.data = make([]byte, h.PageSize)
	return in.advance()
}

// finish reads what is left (pages a later point cut off), then checks
// the file checksum and the trailer.
func (in *increment) finish() error {
	for in.cur != 0 {
		if in.cur <= in.validTo {
			return damaged(in.point.Path, "page %d was not used", in.cur)
		}
		if err := in.advance(); err != nil {
			return err
		}
	}
	if err := in.dec.Close(); err != nil {
		return damaged(in.point.Path, "%v", err)
	}
	if tr := in.dec.Trailer(); !in.hdr.NoChecksum() && tr.PostApplyChecksum.String() != in.point.Chain.State {
		return damaged(in.point.Path, "LTX trailer: ends in state %s, its manifest says %s", tr.PostApplyChecksum, in.point.Chain.State)
	}
	return nil
}

// Materialize builds the last point of chain (a full, then its
// increments in order, as Resolve returns them) in a private temp file:
// streaming, in page order, each page written once (the newest version
// of it), its state checksum compared with the point's, then checked
// with integrity_check (or quick_check). Only a file that passed gets
// the name o.Path. A damaged or missing file of the chain fails with a
// *verify.FailedError naming it.
func Materialize(ctx context.Context, chain []Point, o MaterializeOptions) (_ *Materialized, err error) {
	if err := Validate(chain); err != nil {
		return nil, err
	}
	target := chain[len(chain)-1]
	base := chain[0]
	if o.Path != "" {
		// Known before the work, not only at the rename.
		if _, err := os.Lstat(o.Path); err == nil {
			return nil, fmt.Errorf("materialize %q: file exists; refusing to overwrite it", o.Path)
		}
	}
	defer func() {
		// Damage to another file of the chain: say which point needs it.
		var fe *verify.FailedError
		if errors.As(err, &fe) && fe.Result.Path != target.Path && len(fe.Result.Problems) > 0 {
			fe.Result.Problems[0] += fmt.Sprintf(" (%s needs it)", target.Name())
		}
	}()
	ps := int64(base.Chain.PageSize)
	n := uint32(target.Chain.Pages)
	want, _ := checksum(target.Chain.State)

	bf, err := os.Open(base.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, damaged(base.Path, "missing")
	}
	if err != nil {
		return nil, fmt.Errorf("open full backup %q: %w", base.Path, fsx.PathErr(err))
	}
	defer bf.Close()
	if h, err := sqlitefile.ReadHeader(bf); err != nil {
		return nil, damaged(base.Path, "%v", err)
	} else if int64(h.PageSize) != ps {
		return nil, damaged(base.Path, "%d-byte pages, its manifest says %d", h.PageSize, ps)
	}
	if fi, err := bf.Stat(); err != nil {
		return nil, fmt.Errorf("open full backup %q: %w", base.Path, fsx.PathErr(err))
	} else if fi.Size() != base.Chain.Pages*ps {
		return nil, damaged(base.Path, "%d bytes, its manifest says %d pages of %d", fi.Size(), base.Chain.Pages, ps)
	}

	incs := make([]*increment, len(chain)-1)
	defer func() {
		for _, in := range incs {
			if in != nil && in.f != nil {
				in.f.Close()
			}
		}
	}()
	// A page of an increment is stale above the smallest size of any
	// later point: that point cut it off, and a later one that grew
	// again holds its own.
	baseValid := n
	for i := len(chain) - 1; i >= 1; i-- {
		incs[i-1] = &increment{point: chain[i], validTo: baseValid}
		baseValid = min(baseValid, uint32(chain[i].Chain.Pages))
	}
	baseValid = min(baseValid, uint32(base.Chain.Pages))
	for i, in := range incs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := in.open(chain[i].Chain.State); err != nil {
			return nil, err
		}
	}

	dir := o.TempDir
	if o.Path != "" {
		dir = filepath.Dir(o.Path)
	} else if dir == "" {
		dir = os.TempDir()
	}
	tf, err := fsx.CreateTemp(dir, target.Name(), 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database in %q: %w", dir, err)
	}
	tmp := tf.Name()
	defer func() {
		tf.Close()
		if err != nil || o.Path == "" {
			os.Remove(tmp)
		}
	}()
	started := time.Now()
	res := &Materialized{Point: target.Path, Pages: int64(n), State: target.Chain.State}
	bw := bufio.NewWriterSize(tf, 1<<20)
	lock := ltx.LockPgno(uint32(ps))
	zero := make([]byte, ps)
	// The full is read sequentially a chunk at a time; pages an
	// increment replaces are skipped over in the chunk.
	per := max(1<<20/ps, 1)
	chunk := make([]byte, per*ps)
	chunkFirst, chunkPages := uint32(0), uint32(0)
	state := ltx.ChecksumFlag
	for p := uint32(1); p <= n; p++ {
		if p%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		var page []byte
		for k := len(incs) - 1; k >= 0; k-- {
			if in := incs[k]; in.cur == p && p <= in.validTo {
				page = in.data
				break
			}
		}
		switch {
		case page != nil:
			res.FromIncrements++
		case p == lock:
			page = zero
		case p <= baseValid:
			if p < chunkFirst || p >= chunkFirst+chunkPages {
				chunkFirst, chunkPages = p, uint32(min(int64(per), int64(baseValid-p+1)))
				if _, err := bf.ReadAt(chunk[:int64(chunkPages)*ps], int64(p-1)*ps); err != nil {
					return nil, damaged(base.Path, "read page %d: %v", p, err)
				}
			}
			off := int64(p-chunkFirst) * ps
			page = chunk[off : off+ps]
			res.FromBase++
		default:
			return nil, damaged(target.Path, "page %d of %d is in no file of its chain", p, n)
		}
		if p != lock {
			state = ltx.ChecksumFlag | (state ^ ltx.ChecksumPage(p, page))
		}
		if _, err := bw.Write(page); err != nil {
			return nil, fmt.Errorf("write database %q: %w", tmp, fsx.PathErr(err))
		}
		// Every increment holding this page moves on: the one it came
		// from (after it was written), older versions and stale ones.
		for _, in := range incs {
			if in.cur == p {
				if err := in.advance(); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, in := range incs {
		if err := in.finish(); err != nil {
			return nil, err
		}
	}
	if state != want {
		return nil, stateMismatch(base, target, state)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write database %q: %w", tmp, fsx.PathErr(err))
	}
	if err := tf.Sync(); err != nil {
		return nil, fmt.Errorf("fsync database %q: %w", tmp, fsx.PathErr(err))
	}
	if err := tf.Close(); err != nil {
		return nil, fmt.Errorf("write database %q: %w", tmp, fsx.PathErr(err))
	}
	res.Write = time.Since(started)

	started = time.Now()
	vo := verify.Options{Quick: o.Quick}
	if o.Deep {
		vo.Deep, vo.DeepOf, vo.Identities = true, o.DeepOf, o.Identities
		if vo.DeepOf == "" {
			vo.DeepOf = target.Path
		}
	}
	vr, err := verify.File(ctx, tmp, vo)
	if err != nil {
		return nil, err
	}
	res.CheckTime = time.Since(started)
	vr.Path = target.Path
	res.Check = vr
	if !vr.OK {
		vr.Problems = append([]string{"materialized"}, vr.Problems...)
		return nil, &verify.FailedError{Result: vr}
	}
	if o.Path == "" {
		return res, nil
	}
	if err := fsx.RenameNoReplace(tmp, o.Path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("materialize %q: file exists; refusing to overwrite it", o.Path)
		}
		return nil, fmt.Errorf("rename database to %q: %w", o.Path, fsx.PathErr(err))
	}
	if err := fsx.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("fsync %q: %w", dir, fsx.PathErr(err))
	}
	res.Path = o.Path
	return res, nil
}

// stateMismatch names the file at fault when the materialized state is
// not the point's: the full, if it no longer has its recorded hash (the
// increments were checked before they were read), else the point.
func stateMismatch(base, target Point, got ltx.Checksum) error {
	if base.SHA256 != "" {
		if sum, err := manifest.FileSHA256(base.Path); err == nil && sum != base.SHA256 {
			return damaged(base.Path, "sha256 mismatch: file has %s, its .sha256 says %s (the file changed since it was written)", sum, base.SHA256)
		}
	}
	return damaged(target.Path, "materialized state checksum %s, its manifest says %s", got, target.Chain.State)
}
