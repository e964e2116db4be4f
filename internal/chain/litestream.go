package chain

// The Litestream layout (--layout litestream): beside the backups of a
// database, a directory <db-file>.litestream that Litestream v0.5
// restores from (litestream restore file:///…/<db-file>.litestream).
// Each point of a chain has one file there, named by the TXID its
// manifest records (manifest.Chain.TXID): a full is the level-9
// snapshot ltx/9/<1>-<TXID>.ltx, all its pages; an increment the
// level-0 file ltx/0/<TXID>-<TXID>.ltx of its changed pages, its
// parent's TXID + 1, so a chain is one contiguous run of TXIDs and a
// later full takes a TXID above every earlier one. The files are
// derived from the points, never the other way round: SyncReplica
// writes the file of every point that lacks one and removes every file
// whose point is gone, so retention of the points is retention of the
// replica. See docs/INCREMENTAL.md, "Writing chains Litestream can
// restore".

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/litestream"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/fsx"
)

// LayoutLitestream names the layout (--layout litestream).
const LayoutLitestream = "litestream"

// ReplicaSuffix ends the name of a database's Litestream replica
// directory in a backup directory: <db-file>.litestream.
const ReplicaSuffix = ".litestream"

// Litestream's levels: 9 holds snapshots (litestream.SnapshotLevel),
// 0 the files of single transactions.
const (
	SnapshotLevel  = 9
	IncrementLevel = 0
)

// ReplicaDir is the Litestream replica directory of database file db in
// backup directory dir.
func ReplicaDir(dir, db string) string { return filepath.Join(dir, db+ReplicaSuffix) }

// ReplicaFile is the path of point c's file in replica (relative to it):
// ltx/9/<1>-<TXID>.ltx for a full, ltx/0/<TXID>-<TXID>.ltx for an
// increment.
func ReplicaFile(c manifest.Chain) string {
	if c.Kind == manifest.KindFull {
		return filepath.Join(litestream.LevelDir(false, SnapshotLevel), ltx.FormatFilename(1, ltx.TXID(c.TXID)))
	}
	return filepath.Join(litestream.LevelDir(false, IncrementLevel), ltx.FormatFilename(ltx.TXID(c.TXID), ltx.TXID(c.TXID)))
}

// NextTXID is the TXID a new full of db in dir takes: one above every
// TXID a point of db records and every file of its replica names (when
// it can be read), so that no file Litestream may still see is named
// again.
func NextTXID(dir, db string, loc *time.Location) (uint64, error) {
	l, err := Load(dir, db, "", loc)
	if err != nil {
		return 0, err
	}
	var top uint64
	for _, p := range l.Points {
		top = max(top, p.Chain.TXID)
	}
	// A replica that cannot be read does not stop the backup: the
	// points' TXIDs are enough, and SyncReplica, which fails loudly on
	// it, replaces any file whose header is not its point's.
	files, _ := replicaFiles(ReplicaDir(dir, db))
	for _, f := range files {
		top = max(top, uint64(f.max))
	}
	return top + 1, nil
}

// ReplicaReport is what SyncReplica did: files written and removed,
// relative to the replica directory.
type ReplicaReport struct {
	Dir     string   `json:"dir"`
	Written []string `json:"written,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// SyncReplica makes the Litestream replica of db in dir hold exactly one
// file for every point of db there whose manifest records a TXID: it
// removes the files of points that are gone (pruned), and, unless
// removeOnly, writes the missing ones (a new point, or one whose file a
// killed run never wrote), each proven before it gets its name. The
// caller holds dir's lock. Without points with TXIDs and without a
// replica directory it does nothing.
func SyncReplica(ctx context.Context, dir, db string, loc *time.Location, removeOnly bool) (*ReplicaReport, error) {
	rdir := ReplicaDir(dir, db)
	rep := &ReplicaReport{Dir: rdir}
	l, err := Load(dir, db, "", loc)
	if err != nil {
		return rep, err
	}
	want := map[string]Point{}
	for _, p := range l.Points {
		if p.Chain.TXID == 0 {
			continue
		}
		f := ReplicaFile(p.Chain)
		if o, ok := want[f]; ok {
			return rep, fmt.Errorf("litestream replica %q: %s and %s both have TXID %d; one database file name per backup directory can have a replica", rdir, o.Name(), p.Name(), p.Chain.TXID)
		}
		want[f] = p
	}
	if _, err := os.Lstat(rdir); errors.Is(err, fs.ErrNotExist) && (removeOnly || len(want) == 0) {
		return rep, nil
	}
	files, err := replicaFiles(rdir)
	if err != nil {
		return rep, err
	}
	// A backup whose manifest cannot be read may be a point with a
	// TXID: while there is one, no file is taken for a pruned point's.
	unknown := false
	for name := range l.Not {
		if _, err := manifest.Read(filepath.Join(dir, name)); err != nil {
			unknown = true
		}
	}
	have := map[string]bool{}
	for _, f := range files {
		if p, ok := want[f.rel]; ok {
			if !removeOnly && !isPointsFile(filepath.Join(rdir, f.rel), p) {
				// A file of the same TXID from a point since removed by
				// hand: not this point's; written anew.
				if err := os.Remove(filepath.Join(rdir, f.rel)); err != nil {
					return rep, fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
				}
				rep.Removed = append(rep.Removed, f.rel)
				continue
			}
			have[f.rel] = true
			continue
		}
		if unknown {
			continue
		}
		// Its point is gone: nothing a kept point needs is here, since
		// retention keeps every parent of a kept point.
		if err := os.Remove(filepath.Join(rdir, f.rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
		}
		rep.Removed = append(rep.Removed, f.rel)
	}
	if len(rep.Removed) > 0 {
		for _, level := range []int{IncrementLevel, SnapshotLevel} {
			fsx.SyncDir(filepath.Join(rdir, litestream.LevelDir(false, level)))
		}
	}
	if removeOnly {
		return rep, nil
	}
	var todo []Point
	for f, p := range want {
		if !have[f] {
			todo = append(todo, p)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Chain.TXID < todo[j].Chain.TXID })
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := writeReplicaFile(ctx, rdir, p); err != nil {
			return rep, err
		}
		rep.Written = append(rep.Written, ReplicaFile(p.Chain))
	}
	return rep, nil
}

// ReplicaFiles lists the files of the Litestream replica of db in dir,
// relative to it, in the order a copy must travel for no file to be
// there before the ones it continues: snapshots, then level 0, each by
// TXID.
func ReplicaFiles(dir, db string) ([]string, error) {
	es, err := replicaFiles(ReplicaDir(dir, db))
	if err != nil {
		return nil, err
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].level != es[j].level {
			return es[i].level > es[j].level
		}
		return es[i].max < es[j].max
	})
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.rel
	}
	return out, nil
}

// isPointsFile says whether the replica file at path is point p's by
// its header: its TXIDs, page size, page count and p's start.
func isPointsFile(path string, p Point) bool {
	m, err := manifest.Read(p.Path)
	if err != nil {
		return true // cannot tell: keep it
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h, _, err := ltx.PeekHeader(f)
	if err != nil {
		return false
	}
	return h == lsHeader(p, uint32(p.Chain.PageSize), uint32(p.Chain.Pages), m.Started)
}

type replicaEntry struct {
	rel      string
	level    int
	min, max ltx.TXID
}

// replicaFiles lists the LTX files in levels 0 and 9 of a replica (the
// only ones this tool writes), removing dead runs' temp files there; a
// missing replica is empty.
func replicaFiles(rdir string) ([]replicaEntry, error) {
	var out []replicaEntry
	for _, level := range []int{IncrementLevel, SnapshotLevel} {
		lv := litestream.LevelDir(false, level)
		d := filepath.Join(rdir, lv)
		es, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
		}
		for _, e := range es {
			if strings.HasPrefix(e.Name(), fsx.TempPrefix) {
				continue
			}
			lo, hi, err := ltx.ParseFilename(e.Name())
			if err != nil || !e.Type().IsRegular() {
				continue
			}
			out = append(out, replicaEntry{rel: filepath.Join(lv, e.Name()), level: level, min: lo, max: hi})
		}
	}
	return out, nil
}

// writeReplicaFile writes point p's file in the replica: encoded into a
// temp file, decoded again and compared with what was meant (a full's
// pages must add up to its state checksum; an increment's must be
// exactly its own), then renamed without replacing, with the point's
// start as its modification time (Litestream's file and SFTP clients
// read a file's time from it, for restore -timestamp).
func writeReplicaFile(ctx context.Context, rdir string, p Point) (err error) {
	if strings.HasSuffix(p.Path, encrypt.Suffix) {
		return fmt.Errorf("litestream replica: %s is encrypted; Litestream restores only plain files", p.Name())
	}
	m, err := manifest.Read(p.Path)
	if err != nil {
		return fmt.Errorf("litestream replica: %w", err)
	}
	final := filepath.Join(rdir, ReplicaFile(p.Chain))
	d := filepath.Dir(final)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
	}
	snapshot.RemoveStaleTemps(d)
	// The encoder's own spill files (below) of runs that died: the
	// caller holds the directory's lock, so no live run has one.
	if spills, err := filepath.Glob(filepath.Join(d, ".ltx-page-index-*.tmp")); err == nil {
		for _, f := range spills {
			os.Remove(f)
		}
	}
	tf, err := fsx.CreateTemp(d, filepath.Base(final), 0o600)
	if err != nil {
		return fmt.Errorf("litestream replica: %w", err)
	}
	tmp := tf.Name()
	defer func() {
		if err != nil {
			tf.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(tf, 1<<20)
	var hdr ltx.Header
	var want *written
	if p.Chain.Kind == manifest.KindFull {
		hdr, want, err = encodeSnapshot(ctx, bw, p, m.Started, d)
	} else {
		hdr, want, err = encodeIncrement(ctx, bw, p, m.Started)
	}
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("litestream replica %q: %w", tmp, err)
	}
	if err := tf.Sync(); err != nil {
		return fmt.Errorf("litestream replica %q: %w", tmp, err)
	}
	if err := tf.Close(); err != nil {
		return fmt.Errorf("litestream replica %q: %w", tmp, err)
	}
	if _, _, err := prove(tmp, hdr, 0, want); err != nil {
		return fmt.Errorf("litestream replica: %w", err)
	}
	if err := fsx.RenameNoReplace(tmp, final); err != nil {
		return fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
	}
	if err := fsx.SyncDir(d); err != nil {
		return err
	}
	if !m.Started.IsZero() {
		os.Chtimes(final, m.Started, m.Started)
	}
	return nil
}

// snapshotSpillAt is how many page index entries a snapshot's encoder
// keeps in memory (0: ltx's default, 1M); tests lower it.
var snapshotSpillAt = 0

// lsHeader is the header of p's replica file: no database checksums
// (HeaderFlagNoChecksum, the form Litestream writes: every v0.5 restore
// reads it, and v0.5.16 and older reject checksum-tracked files,
// litestream #1427), the point's TXID and start.
func lsHeader(p Point, pageSize, commit uint32, at time.Time) ltx.Header {
	lo := ltx.TXID(p.Chain.TXID)
	if p.Chain.Kind == manifest.KindFull {
		lo = 1
	}
	return ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: commit,
		MinTXID: lo, MaxTXID: ltx.TXID(p.Chain.TXID), Timestamp: at.UnixMilli()}
}

// encodeSnapshot writes full p (decompressed on the way if it is
// compressed) as a Litestream snapshot: every page but the lock-byte
// page, in order. The pages must add up to the state checksum p's
// manifest records, and the file must hold exactly Pages pages.
func encodeSnapshot(ctx context.Context, w io.Writer, p Point, at time.Time, spillDir string) (ltx.Header, *written, error) {
	c := p.Chain
	fail := func(format string, args ...any) (ltx.Header, *written, error) {
		return ltx.Header{}, nil, damaged(p.Path, format, args...)
	}
	state, err := checksum(c.State)
	if err != nil {
		return fail("manifest: %v", err)
	}
	if !ltx.IsValidPageSize(uint32(c.PageSize)) || c.Pages < 1 || c.Pages > int64(^uint32(0)) {
		return fail("manifest: page size %d, %d pages", c.PageSize, c.Pages)
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return ltx.Header{}, nil, fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
	}
	defer f.Close()
	raw := bufio.NewReaderSize(fsx.ContextReader(ctx, f), 1<<20)
	var r io.Reader = raw
	if k := compress.KindOf(p.Path); k != compress.None {
		pr, pw := io.Pipe()
		go func() {
			_, err := compress.Decode(ctx, k, p.Path, raw, pw)
			pw.CloseWithError(err)
		}()
		defer pr.Close()
		r = pr
	}
	ps, commit := uint32(c.PageSize), uint32(c.Pages)
	hdr := lsHeader(p, ps, commit, at)
	enc, err := ltx.NewEncoder(w)
	if err != nil {
		return ltx.Header{}, nil, err
	}
	// A snapshot's page index is 24 bytes a page in memory: past 1M
	// pages (4 GiB of 4 KiB pages) it goes to a file beside it, so
	// memory stays flat for any database.
	enc.SetSpillDir(spillDir)
	enc.SetSpillThreshold(snapshotSpillAt)
	defer enc.Cleanup()
	if err := enc.EncodeHeader(hdr); err != nil {
		return ltx.Header{}, nil, err
	}
	lock := ltx.LockPgno(ps)
	wrote := newWritten()
	got := ltx.ChecksumFlag
	page := make([]byte, ps)
	for pg := uint32(1); pg <= commit; pg++ {
		if _, err := io.ReadFull(r, page); err != nil {
			return fail("page %d of %d: %v", pg, commit, err)
		}
		if pg == lock {
			continue
		}
		crc := ltx.ChecksumPage(pg, page)
		got = ltx.ChecksumFlag | (got ^ crc)
		wrote.add(pg, crc)
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pg}, page); err != nil {
			return ltx.Header{}, nil, err
		}
	}
	switch _, err := io.ReadFull(r, page[:1]); {
	case err == nil:
		return fail("more than the %d pages its manifest records", commit)
	case !errors.Is(err, io.EOF):
		return fail("after page %d: %v", commit, err)
	}
	if got != state {
		return fail("its pages add up to state checksum %s, its manifest records %s", got, state)
	}
	if err := enc.Close(); err != nil {
		return ltx.Header{}, nil, err
	}
	return hdr, wrote, nil
}

// encodeIncrement writes increment p again with its replica TXID: the
// same pages and commit, read from the file whose SHA-256 must be the
// one its .sha256 records.
func encodeIncrement(ctx context.Context, w io.Writer, p Point, at time.Time) (ltx.Header, *written, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return ltx.Header{}, nil, fmt.Errorf("litestream replica: %w", fsx.PathErr(err))
	}
	defer f.Close()
	sha := sha256.New()
	dec := ltx.NewDecoder(bufio.NewReaderSize(io.TeeReader(fsx.ContextReader(ctx, f), sha), 1<<20))
	dec.SetRetainPageIndex(false)
	fail := func(format string, args ...any) (ltx.Header, *written, error) {
		return ltx.Header{}, nil, damaged(p.Path, format, args...)
	}
	if err := dec.DecodeHeader(); err != nil {
		return fail("header: %v", err)
	}
	in := dec.Header()
	if in.PageSize != uint32(p.Chain.PageSize) || int64(in.Commit) != p.Chain.Pages {
		return fail("header: page size %d, %d pages; its manifest records %d, %d", in.PageSize, in.Commit, p.Chain.PageSize, p.Chain.Pages)
	}
	hdr := lsHeader(p, in.PageSize, in.Commit, at)
	enc, err := ltx.NewEncoder(w)
	if err != nil {
		return ltx.Header{}, nil, err
	}
	defer enc.Cleanup()
	if err := enc.EncodeHeader(hdr); err != nil {
		return ltx.Header{}, nil, err
	}
	wrote := newWritten()
	data := make([]byte, in.PageSize)
	for {
		var ph ltx.PageHeader
		err := dec.DecodePage(&ph, data)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail("page: %v", err)
		}
		wrote.add(ph.Pgno, ltx.ChecksumPage(ph.Pgno, data))
		if err := enc.EncodePage(ltx.PageHeader{Pgno: ph.Pgno}, data); err != nil {
			return ltx.Header{}, nil, err
		}
	}
	if err := dec.Close(); err != nil {
		return fail("%v", err)
	}
	if p.SHA256 != "" {
		if got := hex.EncodeToString(sha.Sum(nil)); got != p.SHA256 {
			return fail("SHA-256 %s, its .sha256 records %s", got, p.SHA256)
		}
	}
	if int64(wrote.n) != p.Chain.Changed {
		return fail("%d pages, its manifest records %d", wrote.n, p.Chain.Changed)
	}
	if err := enc.Close(); err != nil {
		return ltx.Header{}, nil, err
	}
	return hdr, wrote, nil
}
