package remote

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/sys/fsx"
)

// FetchURL downloads the backup URL/NAME names, with its sidecars, into a
// new private directory under parent (Fetch) and returns the local
// backup's path and release, which removes the directory. The run holds
// the directory (fsx.HeldDir) until release: if it is killed, the next
// run that looks in parent removes what it left (fsx.RemoveDead). A URL
// without a NAME is a usage error.
func FetchURL(ctx context.Context, objURL string, o Options, parent string, progress func(done, total int64)) (local string, release func(), err error) {
	url, name, ok := SplitObjectURL(objURL)
	if !ok {
		return "", nil, &Error{URL: Redact(objURL), Kind: KindUsage, Err: hint.Wrap(errors.New("give the remote and the backup's name, URL/NAME"), "sqlite-backup verify s3://bucket/prefix/app.db.20250101_120000")}
	}
	r, err := Open(ctx, url, o)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	dir, err := fsx.MkdirHeld(parent, FetchDirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("temp dir for %s: %w", name, err)
	}
	p, err := Fetch(ctx, r, name, dir.Path, progress)
	if err != nil {
		dir.Release()
		return "", nil, err
	}
	return p, dir.Release, nil
}

// FetchDirPrefix starts the name of the private directory FetchURL
// downloads into.
const FetchDirPrefix = fsx.FetchDirPrefix

// FetchChainURL is FetchURL for a point of an incremental chain (an
// .ltx[.age] increment): the point and, following the parents its
// manifest names, every file it needs up to its chain's full, each with
// its sidecars and checked against its .sha256 on the way in, into one
// private directory. A parent missing on the remote ends the walk: the
// chain is then judged where it is read (chain.Open names the file). For
// any other backup it is FetchURL.
func FetchChainURL(ctx context.Context, objURL string, o Options, parent string, progress func(done, total int64)) (local string, release func(), err error) {
	url, name, ok := SplitObjectURL(objURL)
	if !ok || retention.KindOf(name) != retention.KindIncrement {
		return FetchURL(ctx, objURL, o, parent, progress)
	}
	r, err := Open(ctx, url, o)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	dir, err := fsx.MkdirHeld(parent, FetchDirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("temp dir for %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			dir.Release()
		}
	}()
	local, err = Fetch(ctx, r, name, dir.Path, progress)
	if err != nil {
		return "", nil, err
	}
	seen := map[string]bool{name: true}
	next := name
	for {
		m, err := manifest.Read(filepath.Join(dir.Path, next))
		if err != nil || m.Chain == nil || m.Chain.Kind != manifest.KindIncrement || m.Chain.Parent == "" {
			break // a full, or what chain.Open will name
		}
		next = m.Chain.Parent
		if seen[next] || strings.ContainsAny(next, "/\\") {
			break
		}
		seen[next] = true
		if _, err := Fetch(ctx, r, next, dir.Path, progress); err != nil {
			if errors.Is(err, ErrNotExist) {
				break
			}
			return "", nil, err
		}
	}
	return local, dir.Release, nil
}

// At finds the newest complete backup of the database source on r taken
// at or before t, as backup.At does locally: by the instant its manifest
// says it was taken, else the local time in its name; backups whose
// manifest names another source are left out. ok is false when none
// was; oldest then names the oldest there, if any.
func At(ctx context.Context, r Remote, source string, t time.Time, loc *time.Location) (best, oldest *Entry, taken, oldestTaken time.Time, err error) {
	es, err := List(ctx, r, []string{filepath.Base(source)}, loc)
	if err != nil {
		return nil, nil, taken, oldestTaken, err
	}
	for i := range es {
		e := &es[i]
		if !e.Complete {
			continue
		}
		when := e.Time
		m, err := readManifest(ctx, r, e.Name)
		if err != nil {
			return nil, nil, taken, oldestTaken, err
		}
		if m.Source != "" && m.Source != source {
			continue
		}
		if !m.Started.IsZero() {
			when = m.Started
		}
		if oldest == nil || when.Before(oldestTaken) {
			oldest, oldestTaken = e, when
		}
		if !when.After(t) && (best == nil || when.After(taken)) {
			best, taken = e, when
		}
	}
	return best, oldest, taken, oldestTaken, nil
}
