// Package litestream reads Litestream v0.5 replicas: a directory, an
// SFTP directory or an S3 prefix holding <minTXID>-<maxTXID>.ltx files
// per level, in ltx/<level>/ (file, sftp) or <level as %04x>/ (S3), level
// 9 the snapshots. A replica is recognised by that layout
// (Open). A point (the newest, a TXID, or a time) is restored with the
// files Litestream's own restore would choose (Plan, a port of its
// CalcRestorePlan): the newest snapshot at or before the point, then the
// files of any level that extend the TXIDs furthest. Restore merges those
// files page by page into a private temp file, newest version of each
// page winning, checks every file's LTX checksum and trailer on the way
// and the database with integrity_check after; only then does the caller
// get the file. A damaged, missing or out-of-place file is a failed
// verification (verify.FailedError) naming it. Foreign LTX files are
// never trusted to size an allocation (guard.go).
package litestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/remote"
)

// SnapshotLevel is where Litestream keeps full snapshots; levels below
// it hold compactions of ever longer TXID ranges, level 0 each sync.
const SnapshotLevel = 9

// Kind is how results name what they read.
const Kind = "litestream"

// File is one LTX file of a replica.
type File struct {
	// Dir is its level's directory in the replica (levelDirs).
	Dir     string    `json:"-"`
	Level   int       `json:"level"`
	MinTXID ltx.TXID  `json:"min_txid"`
	MaxTXID ltx.TXID  `json:"max_txid"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// Name is the file's path in the replica, as Litestream names it.
func (f File) Name() string {
	return path.Join(f.Dir, ltx.FormatFilename(f.MinTXID, f.MaxTXID))
}

// LevelDir is where Litestream v0.5.18 keeps a level's files below a
// replica's path: its file and sftp clients in ltx/<level>/, its S3
// client (and the other object stores') in <level as 4 hex digits>/.
// Readers and writers of the layout all take the names from here.
func LevelDir(objectStore bool, level int) string {
	if objectStore {
		return fmt.Sprintf("%04x", level)
	}
	return path.Join("ltx", strconv.Itoa(level))
}

// levelDirs are both places a level's files may be.
func levelDirs(level int) []string {
	return []string{LevelDir(false, level), LevelDir(true, level)}
}

// Replica is one Litestream replica and the files it held when opened.
type Replica struct {
	// Location is the directory or URL (without secrets).
	Location string
	// Levels holds each level's files in TXID order.
	Levels map[int][]File
	st     store
}

// ErrNotReplica is returned by Open for a location without Litestream's
// layout.
var ErrNotReplica = errors.New("not a Litestream replica")

// store reads one replica's files, local or on a remote.
type store interface {
	list(ctx context.Context, level int, dir string) ([]File, error)
	// open streams f; parallel: in the backend's parallel download.
	open(ctx context.Context, f File, parallel bool) (io.ReadCloser, error)
	// headerTimes: listed times are upload times, not the LTX header's
	// timestamp Litestream restores by (S3 keeps that in metadata).
	headerTimes() bool
	close()
}

// Open reads the layout at loc (a directory, sftp://… or s3://…) and
// returns ErrNotReplica when it has no ltx/<level>/ file Litestream
// would restore from. Remote options reach sftp and s3.
func Open(ctx context.Context, loc string, ro remote.Options) (*Replica, error) {
	var st store
	shown := loc
	if remote.IsURL(loc) {
		shown = remote.Redact(loc)
		rm, err := remote.Open(ctx, loc, ro)
		if err != nil {
			return nil, err
		}
		t, ok := rm.(remote.Tree)
		if !ok {
			rm.Close()
			return nil, ErrNotReplica
		}
		st = &remoteStore{r: rm, t: t, s3: strings.HasPrefix(loc, "s3://")}
	} else {
		if fi, err := os.Stat(loc); err != nil || !fi.IsDir() {
			return nil, ErrNotReplica
		}
		st = localStore{dir: loc}
	}
	r := &Replica{Location: strings.TrimSuffix(shown, "/"), Levels: map[int][]File{}, st: st}
	// All levels at once: on a remote each list is a round trip.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for level := 0; level <= SnapshotLevel; level++ {
		for _, dir := range levelDirs(level) {
			wg.Go(func() {
				fs, err := st.list(ctx, level, dir)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if len(fs) > 0 {
					r.Levels[level] = append(r.Levels[level], fs...)
				}
			})
		}
	}
	wg.Wait()
	if firstErr != nil {
		st.close()
		return nil, fmt.Errorf("list litestream replica %q: %w", r.Location, firstErr)
	}
	if len(r.Levels) == 0 {
		st.close()
		return nil, ErrNotReplica
	}
	for _, fs := range r.Levels {
		sortFiles(fs)
	}
	return r, nil
}

// Close ends the replica's connection, if any.
func (r *Replica) Close() { r.st.close() }

// Where names f for messages: the replica's location and the file's path.
func (r *Replica) Where(f File) string { return r.Location + "/" + f.Name() }

// parseFiles keeps the LTX files among a level's listing, by name, in
// TXID order. Litestream's own temp files (.tmp) and anything else are
// not its files.
func parseFiles(level int, dir string, objs []remote.Object) []File {
	var out []File
	for _, o := range objs {
		min, max, err := ltx.ParseFilename(o.Name)
		if err != nil || ltx.FormatFilename(min, max) != o.Name {
			continue
		}
		out = append(out, File{Dir: dir, Level: level, MinTXID: min, MaxTXID: max, Size: o.Size, Created: o.ModTime.UTC()})
	}
	return out
}

func sortFiles(fs []File) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].MinTXID != fs[j].MinTXID {
			return fs[i].MinTXID < fs[j].MinTXID
		}
		return fs[i].MaxTXID < fs[j].MaxTXID
	})
}

type localStore struct{ dir string }

func (l localStore) list(_ context.Context, level int, dir string) ([]File, error) {
	d := filepath.Join(l.dir, filepath.FromSlash(dir))
	es, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", d, err)
	}
	var objs []remote.Object
	for _, e := range es {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile (Litestream's retention)
		}
		objs = append(objs, remote.Object{Name: e.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return parseFiles(level, dir, objs), nil
}

func (l localStore) open(_ context.Context, f File, _ bool) (io.ReadCloser, error) {
	fh, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(f.Name())))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, remote.ErrNotExist
	}
	return fh, err
}

func (localStore) headerTimes() bool { return false }
func (localStore) close()            {}

type remoteStore struct {
	r  remote.Remote
	t  remote.Tree
	s3 bool
}

func (s *remoteStore) list(ctx context.Context, level int, dir string) ([]File, error) {
	objs, err := s.t.ListDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	return parseFiles(level, dir, objs), nil
}

func (s *remoteStore) open(ctx context.Context, f File, parallel bool) (io.ReadCloser, error) {
	return s.t.GetPath(ctx, f.Name(), parallel)
}

func (s *remoteStore) headerTimes() bool { return s.s3 }
func (s *remoteStore) close()            { s.r.Close() }

// headerTime reads f's LTX header for the time Litestream stamped it
// with (what its S3 client keeps in object metadata).
func (r *Replica) headerTime(ctx context.Context, f File) (time.Time, error) {
	rc, err := r.st.open(ctx, f, false)
	if err != nil {
		return time.Time{}, err
	}
	defer rc.Close()
	b := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(rc, b); err != nil {
		return time.Time{}, err
	}
	var h ltx.Header
	if err := h.UnmarshalBinary(b); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(h.Timestamp).UTC(), nil
}

// fixTimes replaces listed times by header times where the listing's
// are upload times (S3), as Litestream does for a restore by time.
func (r *Replica) fixTimes(ctx context.Context) error {
	if !r.st.headerTimes() {
		return nil
	}
	type job struct{ level, i int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				f := r.Levels[j.level][j.i]
				t, err := r.headerTime(ctx, f)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("read header of %q: %w", r.Where(f), err)
				}
				if err == nil {
					r.Levels[j.level][j.i].Created = t
				}
				mu.Unlock()
			}
		})
	}
	for level, fs := range r.Levels {
		for i := range fs {
			jobs <- job{level, i}
		}
	}
	close(jobs)
	wg.Wait()
	return firstErr
}
