package chain

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/fsx"
)

// DefaultMaxChanged is the share of a database's pages above which an
// increment gives way to a full backup: past half, an increment costs
// about what a full costs, and makes every later restore read more.
const DefaultMaxChanged = 0.5

// IncrementOptions describe one increment. The caller holds the backup
// directory's lock.
type IncrementOptions struct {
	Source string
	// Parent is the newest point of the chain, which the increment
	// applies to; Index the page index written with it.
	Parent Point
	Index  string
	// Path is the increment's final name; it must not exist.
	Path string
	// MaxChanged is the share of the pages above which a full is needed
	// instead (DefaultMaxChanged if 0).
	MaxChanged float64
	// NoChecksum writes the LTX file without pre- and post-apply
	// checksums, the form Litestream writes and restores (litestream
	// #1427); the state checksum is then proven and kept in the
	// manifest only.
	NoChecksum  bool
	BusyTimeout time.Duration
	Now         func() time.Time // the LTX timestamp; time.Now if nil
	// Snapshot, if set, is called with a connection that sees exactly the
	// snapshot the increment holds (row counts for the manifest).
	Snapshot func(ctx context.Context, conn *sql.Conn) error
	// Check, if set, is called with the proven increment still under its
	// temp name (p.Path; p.Chain complete), after the source's snapshot
	// was let go and before anything is published: the materialized
	// check of the chain's head (--check-every). Its error publishes
	// nothing; it may set p.Chain.Checked and CheckedAt.
	Check func(ctx context.Context, p *Point) error
	// Seal, if set, turns the proven LTX temp file into the file that is
	// published in its place (age encryption, proven to decrypt): it
	// returns that file, a new temp file in the same directory, and its
	// SHA-256. The plain temp file is removed.
	Seal func(ctx context.Context, tmp string) (sealed, sha256 string, err error)
	// Describe, if set, is called with the increment as it will be
	// published (p.Path its final name, which does not exist yet; size
	// the bytes of the file that gets it) just before the rename: the sidecars, written first so that no
	// increment is ever under its name without them (a killed run leaves
	// at most sidecars without their file, which the next run removes).
	// undo, called if the rename then fails, removes what it wrote.
	Describe func(ctx context.Context, p *Point, size int64) (undo func(), err error)
	// Published, if set, is called once the increment has its name and
	// before the page index is replaced (the sidecars): if it fails, the
	// index stays the parent's, so the next run takes a full.
	Published func(ctx context.Context, p *Point) error

	throughSQLite bool // tests: read every page through sqlite_dbpage
}

// Increment is a published increment.
type Increment struct {
	Point
	Size int64 // bytes of the published file (the LTX file, or it sealed)
	// Retried says why the pages were read a second time through SQLite,
	// when they were.
	Retried string
	// Read is the time spent reading, hashing and encoding the pages,
	// Prove the time spent decoding the file again.
	Read, Prove time.Duration
}

// incrementProof is what an increment proves before it gets its name.
const incrementProof = "decoded after writing: holds exactly the pages read as changed; every other page of the snapshot hashes (xxh3-128, keyed) as in the parent's page index, whose checksums add up to the parent's state; the state checksum is the parent's updated with these pages"

// WriteIncrement writes the pages of the source's current snapshot that
// differ from the parent point as one LTX file at o.Path, proves it, and
// replaces the page index. An error for which IsNeedFull holds means the
// next point must be a full backup; nothing was published then.
func WriteIncrement(ctx context.Context, o IncrementOptions) (*Increment, error) {
	if o.MaxChanged <= 0 {
		o.MaxChanged = DefaultMaxChanged
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pc := o.Parent.Chain
	if pc.Kind != manifest.KindFull && pc.Kind != manifest.KindIncrement {
		return nil, needFull("%s is no point of a chain", o.Parent.Name())
	}
	if _, err := checksum(pc.State); err != nil {
		return nil, needFull("the manifest of %s: %v", o.Parent.Name(), err)
	}
	if _, err := os.Lstat(o.Path); err == nil {
		// Known before the source is read, not only at the rename.
		return nil, fmt.Errorf("increment %q: file exists; refusing to overwrite it", o.Path)
	}
	inc, err := o.write(ctx, o.throughSQLite)
	if errors.Is(err, snapshot.ErrPlan) {
		// Not expected: the file read's own guard fired. Read the
		// snapshot again, all of it through SQLite.
		why := err.Error()
		inc, err = o.write(ctx, true)
		if inc != nil {
			inc.Retried = why
		}
	}
	return inc, err
}

// written follows the pages an increment holds: how many, the XOR of
// their checksums and a hash of their (page number, checksum) sequence.
// The pages read as changed and the pages decoded from the file written
// must give the same.
type written struct {
	n   int64
	xor ltx.Checksum
	seq hash.Hash
}

func newWritten() *written { return &written{xor: ltx.ChecksumFlag, seq: sha256.New()} }

func (w *written) add(pgno uint32, crc ltx.Checksum) {
	w.n++
	w.xor = ltx.ChecksumFlag | (w.xor ^ crc)
	var b [12]byte
	binary.BigEndian.PutUint32(b[:4], pgno)
	binary.BigEndian.PutUint64(b[4:], uint64(crc))
	w.seq.Write(b[:])
}

func (w *written) same(o *written) bool {
	return w.n == o.n && w.xor == o.xor && string(w.seq.Sum(nil)) == string(o.seq.Sum(nil))
}

func (o IncrementOptions) write(ctx context.Context, throughSQLite bool) (_ *Increment, err error) {
	pc := o.Parent.Chain
	pre, _ := checksum(pc.State)
	ix, err := pageindex.Open(o.Index, pc.IndexSHA256)
	if err != nil {
		if errors.Is(err, pageindex.ErrUnusable) {
			return nil, needFull("%v", err)
		}
		return nil, err
	}
	defer ix.Close()
	ih := ix.Header()
	if ih.Seq != uint64(pc.Seq) || ih.State != pre || int(ih.PageSize) != pc.PageSize || int64(ih.Pages) != pc.Pages {
		return nil, needFull("page index %q describes another point than %s", o.Index, o.Parent.Name())
	}

	src, err := snapshot.OpenPages(ctx, o.Source, snapshot.PagesOptions{BusyTimeout: o.BusyTimeout, ThroughSQLite: throughSQLite})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if o.Snapshot != nil {
		if err := src.Snapshot(ctx, o.Snapshot); err != nil {
			return nil, err
		}
	}
	if src.PageSize != pc.PageSize {
		return nil, needFull("the page size changed from %d to %d bytes", pc.PageSize, src.PageSize)
	}
	if src.Count > int64(^uint32(0)) || src.Count < 1 {
		return nil, fmt.Errorf("read source %q: %d pages", src.Source, src.Count)
	}
	ps, commit, old := src.PageSize, uint32(src.Count), ih.Pages
	limit := int64(o.MaxChanged * float64(commit))

	dir := filepath.Dir(o.Path)
	db := filepath.Base(src.Source)
	tf, err := fsx.CreateTemp(dir, db, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create increment in %q: %w", dir, err)
	}
	tmp := tf.Name()
	defer func() {
		if err != nil {
			tf.Close()
			os.Remove(tmp)
		}
	}()
	nw, err := pageindex.Create(filepath.Dir(o.Index), db, pageindex.Header{PageSize: uint32(ps), Pages: commit, Seed: ih.Seed, Seq: uint64(pc.Seq + 1)})
	if err != nil {
		return nil, err
	}
	indexPublished := false
	defer func() {
		if !indexPublished {
			nw.Abort()
		}
	}()

	seq := pc.Seq + 1
	hdr := ltx.Header{Version: ltx.Version, PageSize: uint32(ps), Commit: commit, MinTXID: txid(seq), MaxTXID: txid(seq),
		Timestamp: o.Now().UnixMilli(), PreApplyChecksum: pre}
	if o.NoChecksum {
		hdr.Flags, hdr.PreApplyChecksum = ltx.HeaderFlagNoChecksum, 0
	}
	bw := bufio.NewWriterSize(tf, 1<<20)
	enc, err := ltx.NewEncoder(bw)
	if err != nil {
		return nil, err
	}
	defer enc.Cleanup()
	if err := enc.EncodeHeader(hdr); err != nil {
		return nil, fmt.Errorf("write increment %q: %w", tmp, err)
	}

	started := time.Now()
	state := pre
	wrote := newWritten()
	lock := ltx.LockPgno(uint32(ps))
	err = src.Read(ctx, func(first int64, buf []byte) error {
		for i := 0; i < len(buf)/ps; i++ {
			p := uint32(first) + uint32(i)
			page := buf[i*ps : (i+1)*ps]
			var prev pageindex.Entry
			if p <= old {
				var err error
				if prev, err = ix.Next(); err != nil {
					return needFull("%v", err)
				}
			}
			if p == lock {
				if err := nw.Add(pageindex.Entry{}); err != nil {
					return err
				}
				continue
			}
			h := ih.Hash(page)
			if p <= old && h == prev.Hash {
				if err := nw.Add(prev); err != nil {
					return err
				}
				continue
			}
			crc := ltx.ChecksumPage(p, page)
			if p <= old {
				state = ltx.ChecksumFlag | (state ^ prev.CRC)
			}
			state = ltx.ChecksumFlag | (state ^ crc)
			wrote.add(p, crc)
			if wrote.n > limit {
				return needFull("more than %d of %d pages changed (%.0f %%)", limit, commit, 100*o.MaxChanged)
			}
			if err := enc.EncodePage(ltx.PageHeader{Pgno: p}, page); err != nil {
				return fmt.Errorf("write increment %q: %w", tmp, err)
			}
			if err := nw.Add(pageindex.Entry{Hash: h, CRC: crc}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Pages past the new end are gone: their checksums leave the state.
	for p := commit + 1; p <= old; p++ {
		prev, err := ix.Next()
		if err != nil {
			return nil, needFull("%v", err)
		}
		if p != lock {
			state = ltx.ChecksumFlag | (state ^ prev.CRC)
		}
	}
	if err := ix.Finish(); err != nil {
		return nil, needFull("%v", err)
	}
	post := state
	if o.NoChecksum {
		post = 0
	}
	enc.SetPostApplyChecksum(post)
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write increment %q: %w", tmp, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write increment %q: %w", tmp, fsx.PathErr(err))
	}
	if err := tf.Sync(); err != nil {
		return nil, fmt.Errorf("fsync increment %q: %w", tmp, fsx.PathErr(err))
	}
	if err := tf.Close(); err != nil {
		return nil, fmt.Errorf("write increment %q: %w", tmp, fsx.PathErr(err))
	}
	readTime := time.Since(started)

	started = time.Now()
	sum, size, err := prove(tmp, hdr, post, wrote)
	if err != nil {
		return nil, err
	}
	digest, err := nw.Finish(state)
	if err != nil {
		return nil, err
	}
	proveTime := time.Since(started)
	// What the snapshot pinned is all read: let the application's
	// checkpoints go on while the increment is checked and sealed.
	src.Close()

	base := pc.Base
	if pc.Kind == manifest.KindFull {
		base = o.Parent.Name()
	}
	pt := Point{Path: tmp, SHA256: sum, Chain: manifest.Chain{
		Kind: manifest.KindIncrement, Seq: seq, Parent: o.Parent.Name(), Base: base,
		PageSize: ps, Pages: int64(commit), Changed: wrote.n,
		State: state.String(), PreState: pc.State, IndexSHA256: digest,
		Read: src.Via, Proof: incrementProof,
	}}
	if o.Check != nil {
		if err := o.Check(ctx, &pt); err != nil {
			return nil, err
		}
	}
	if o.Seal != nil {
		sealed, ssum, err := o.Seal(ctx, tmp)
		if err != nil {
			return nil, err
		}
		os.Remove(tmp)
		tmp, sum = sealed, ssum // removed on error from here on
		fi, err := os.Stat(tmp)
		if err != nil {
			return nil, fmt.Errorf("stat increment %q: %w", tmp, fsx.PathErr(err))
		}
		size = fi.Size()
	}

	pt.SHA256 = sum
	undo := func() {}
	if o.Describe != nil {
		final := pt
		final.Path = o.Path
		if _, err := os.Lstat(o.Path); err == nil {
			return nil, fmt.Errorf("increment %q: file exists; refusing to overwrite it", o.Path)
		}
		u, err := o.Describe(ctx, &final, size)
		if u != nil {
			undo = u
		}
		if err != nil {
			undo()
			return nil, err
		}
		pt.Chain = final.Chain
	}
	if err := fsx.RenameNoReplace(tmp, o.Path); err != nil {
		undo()
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("increment %q: file exists; refusing to overwrite it", o.Path)
		}
		return nil, fmt.Errorf("rename increment to %q: %w", o.Path, fsx.PathErr(err))
	}
	if err := fsx.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("fsync backup dir %q: %w", dir, fsx.PathErr(err))
	}
	pt.Path, pt.SHA256 = o.Path, sum
	inc := &Increment{Point: pt, Size: size, Read: readTime, Prove: proveTime}
	// Published: from here on the error is returned with the increment.
	if o.Published != nil {
		if err := o.Published(ctx, &inc.Point); err != nil {
			return inc, err
		}
	}
	if err := nw.Publish(o.Index); err != nil {
		return inc, err
	}
	indexPublished = true
	return inc, nil
}

// prove decodes the LTX file at path as written: its file checksum, its
// header and trailer as intended, and exactly the pages read as changed
// (want). It returns the file's SHA-256 and size.
func prove(path string, hdr ltx.Header, post ltx.Checksum, want *written) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("prove increment %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	sha := sha256.New()
	cr := &countReader{r: io.TeeReader(f, sha)}
	dec := ltx.NewDecoder(bufio.NewReaderSize(cr, 1<<20))
	dec.SetRetainPageIndex(false)
	fail := func(format string, args ...any) (string, int64, error) {
		return "", 0, fmt.Errorf("prove increment %q: %s", path, fmt.Sprintf(format, args...))
	}
	if err := dec.DecodeHeader(); err != nil {
		return fail("header: %v", err)
	}
	if got := dec.Header(); got != hdr {
		return fail("header reads %+v, %+v was written", got, hdr)
	}
	got := newWritten()
	data := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		err := dec.DecodePage(&ph, data)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail("page: %v", err)
		}
		got.add(ph.Pgno, ltx.ChecksumPage(ph.Pgno, data))
	}
	if err := dec.Close(); err != nil {
		return fail("%v", err)
	}
	if tr := dec.Trailer(); tr.PostApplyChecksum != post {
		return fail("post-apply checksum %s, %s was written", tr.PostApplyChecksum, post)
	}
	if !got.same(want) {
		return fail("it decodes to %d pages, %d were read as changed, or other pages or contents", got.n, want.n)
	}
	return hex.EncodeToString(sha.Sum(nil)), cr.n, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
