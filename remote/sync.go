package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
)

// SyncOptions say which local backups go to a remote and how it is
// pruned after.
type SyncOptions struct {
	Dir    string // local backup directory
	Source string // absolute path of the database; its base name selects the backups
	// Newest is the backup just made (kept on the remote whatever the rules).
	Newest string
	Policy retention.Policy
	Prune  bool // apply Policy on the remote once every upload there succeeded
	// Attempts and Backoff bound the retries of a transient failure.
	Attempts int
	Backoff  time.Duration
	Progress func(name string, done, total int64)
	// Phase, if set, is told how an upload of name is being checked
	// once its bytes went out (PhaseServerHash, PhaseReadBack).
	Phase func(name, phase string)
	Loc   *time.Location
}

// SyncReport is what Sync did on one remote.
type SyncReport struct {
	Remote   string   `json:"remote"`
	Uploaded []string `json:"uploaded"`
	Present  int      `json:"already_present"`
	Skipped  []string `json:"skipped,omitempty"` // local backups not sent, with why
	Removed  []string `json:"removed"`
	Kept     int      `json:"kept"`
	Pruned   bool     `json:"pruned"`
	Bytes    int64    `json:"bytes_uploaded"`
	// DurationMS is the whole exchange with this remote: listing,
	// uploads with their checks, sidecars and pruning.
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// Sync uploads the verified local backups of one database that the remote
// lacks, newest first, each with its sidecars after it; then, if every
// upload succeeded and the newest backup is complete there, prunes the
// remote by the policy. It stops at the first failure: nothing is pruned.
func Sync(ctx context.Context, r Remote, url string, o SyncOptions) (*SyncReport, error) {
	rep := &SyncReport{Remote: url, Uploaded: []string{}, Removed: []string{}}
	t0 := time.Now()
	defer func() { rep.DurationMS = time.Since(t0).Milliseconds() }()
	if o.Loc == nil {
		o.Loc = time.Local
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	db := filepath.Base(o.Source)
	retry := func(fn func() error) error { return Retry(ctx, o.Attempts, o.Backoff, fn) }
	var objs []Object
	if err := retry(func() (err error) { objs, err = r.List(ctx); return err }); err != nil {
		return rep, err
	}
	have := map[string]int64{}
	for _, ob := range objs {
		have[ob.Name] = ob.Size
	}
	local, err := retention.Find(o.Dir, db, o.Loc)
	if err != nil {
		return rep, err
	}
	// What an interrupted upload of this database left is stale: no
	// other run sends this database's backups while this one holds them.
	mine := func(name string, _ time.Time) bool {
		d, _, _, _, ok := retention.Parse(trimSidecar(name), o.Loc)
		return ok && d == db
	}
	if err := retry(func() error { return r.Cleanup(ctx, mine) }); err != nil {
		return rep, err
	}

	complete := func(b retention.Backup) bool {
		sz, ok := have[b.Name]
		_, s1 := have[b.Name+manifest.SHA256Suffix]
		_, s2 := have[b.Name+manifest.JSONSuffix]
		return ok && sz == b.Size && s1 && s2
	}
	for _, b := range local {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		m, err := manifest.Read(b.Path)
		switch {
		case err != nil:
			rep.Skipped = append(rep.Skipped, b.Name+": no readable manifest")
			continue
		case m.Source != "" && m.Source != o.Source:
			continue // another database with the same file name
		case !m.Verified():
			rep.Skipped = append(rep.Skipped, b.Name+": not verified")
			continue
		}
		sum, err := manifest.ReadSHA256(b.Path)
		if err != nil {
			rep.Skipped = append(rep.Skipped, b.Name+": "+err.Error())
			continue
		}
		if _, ok := have[b.Name+manifest.SHA256Suffix]; ok {
			// Same name, other bytes: another database with this file
			// name sends to the same place. Neither is overwritten.
			var theirs string
			if err := retry(func() (err error) { theirs, err = readSHA256(ctx, r, b.Name); return err }); err != nil {
				return rep, err
			}
			if theirs != sum {
				return rep, hint.Wrap(&Error{URL: url, Kind: KindConflict, Err: fmt.Errorf("it already holds a different %s (sha256 %s, this one %s): another database with the file name %s sends here", b.Name, theirs, sum, db)},
					"give each database its own remote directory or prefix")
			}
			if complete(b) {
				rep.Present++
				continue
			}
		}
		if err := upload(ctx, r, b, sum, o, retry); err != nil {
			return rep, err
		}
		rep.Uploaded = append(rep.Uploaded, b.Name)
		rep.Bytes += b.Size
		have[b.Name] = b.Size
		have[b.Name+manifest.SHA256Suffix] = 0
		have[b.Name+manifest.JSONSuffix] = 0
	}
	if !o.Prune || o.Policy.KeepsAll() {
		return rep, nil
	}
	if o.Newest != "" {
		if _, ok := have[filepath.Base(o.Newest)+manifest.JSONSuffix]; !ok {
			return rep, nil // never prune where the newest backup is not
		}
	}
	pr, err := Prune(ctx, r, PruneOptions{Source: o.Source, Newest: o.Newest, Policy: o.Policy, Loc: o.Loc, Attempts: o.Attempts, Backoff: o.Backoff})
	if pr != nil {
		rep.Removed, rep.Kept, rep.Pruned = pr.Removed, len(pr.Kept), err == nil
	}
	return rep, err
}

func trimSidecar(name string) string {
	for _, s := range retention.SidecarSuffixes {
		if t, ok := strings.CutSuffix(name, s); ok {
			return t
		}
	}
	return name
}

// upload sends one backup, then its .sha256 and .json: a backup is
// complete on a remote only once its sidecars are there.
func upload(ctx context.Context, r Remote, b retention.Backup, sum string, o SyncOptions, retry func(func() error) error) error {
	f, err := os.Open(b.Path)
	if err != nil {
		return fmt.Errorf("open backup %q: %w", b.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat backup %q: %w", b.Path, err)
	}
	src := Source{R: f, Size: fi.Size(), SHA256: sum}
	if o.Progress != nil {
		src.Progress = func(n int64) { o.Progress(b.Name, n, fi.Size()) }
	}
	if o.Phase != nil {
		src.Phase = func(p string) { o.Phase(b.Name, p) }
	}
	if err := retry(func() error { return r.Put(ctx, b.Name, src) }); err != nil {
		return err
	}
	for _, s := range []string{manifest.SHA256Suffix, manifest.JSONSuffix} {
		data, err := os.ReadFile(b.Path + s)
		if err != nil {
			return fmt.Errorf("read sidecar: %w", err)
		}
		h := sha256.Sum256(data)
		side := Source{R: bytes.NewReader(data), Size: int64(len(data)), SHA256: hex.EncodeToString(h[:])}
		if err := retry(func() error { return r.Put(ctx, b.Name+s, side) }); err != nil {
			return err
		}
	}
	return nil
}

// PruneOptions for Prune.
type PruneOptions struct {
	Source   string // absolute path of the database
	Newest   string // kept whatever the rules say (the backup just made)
	Policy   retention.Policy
	DryRun   bool
	Loc      *time.Location
	Attempts int
	Backoff  time.Duration
}

// PruneReport says what was kept and removed on one remote.
type PruneReport struct {
	Policy  string               `json:"policy"`
	DryRun  bool                 `json:"dry_run,omitempty"`
	Kept    []retention.Decision `json:"kept"`
	Remove  []retention.Decision `json:"remove"`
	Removed []string             `json:"removed"`
	// Foreign backups have this database's file name but another source
	// in their manifest; Incomplete ones lack a sidecar. Neither is touched.
	Foreign    []string `json:"foreign,omitempty"`
	Incomplete []string `json:"incomplete,omitempty"`
}

// Prune applies the policy to the complete backups of one database on a
// remote, with the same care as locally: only this database's exact
// names, never one whose manifest names another source.
func Prune(ctx context.Context, r Remote, o PruneOptions) (*PruneReport, error) {
	rep := &PruneReport{Policy: o.Policy.String(), DryRun: o.DryRun, Kept: []retention.Decision{}, Remove: []retention.Decision{}, Removed: []string{}}
	if o.Loc == nil {
		o.Loc = time.Local
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	retry := func(fn func() error) error { return Retry(ctx, o.Attempts, o.Backoff, fn) }
	es, err := List(ctx, r, []string{filepath.Base(o.Source)}, o.Loc)
	if err != nil {
		return rep, err
	}
	var mine []retention.Backup
	flagged := map[string]bool{}
	links := map[string]retention.Link{} // a kept point keeps what it needs
	for _, e := range es {
		switch {
		case !e.Complete:
			rep.Incomplete = append(rep.Incomplete, e.Name)
			continue
		}
		m, err := readManifest(ctx, r, e.Name)
		if err != nil {
			return rep, err
		}
		if m.Source != "" && m.Source != o.Source {
			rep.Foreign = append(rep.Foreign, e.Name)
			continue
		}
		mine = append(mine, e.Backup)
		flagged[e.Backup.Path] = m.Flagged()
		links[e.Name] = retention.Link{}
		if m.Chain != nil {
			links[e.Name] = retention.Link{Kind: m.Chain.Kind, Parent: m.Chain.Parent}
		}
	}
	protect := map[string]string{}
	if o.Newest != "" {
		protect[filepath.Base(o.Newest)] = "just made"
	}
	// As locally (backup.Prune): a backup that tripped the shrink guard
	// and the last one before it outlive every rule until a person
	// removes the flagged one.
	retention.SortNewestFirst(mine)
	for i, b := range mine {
		if !flagged[b.Path] {
			continue
		}
		protect[b.Path] = "shrink warning"
		if i+1 < len(mine) {
			protect[mine[i+1].Path] = "last before the shrink warning of " + b.Name
		}
	}
	for _, d := range retention.PlanChains(mine, o.Policy, protect, links) {
		if d.Keep {
			rep.Kept = append(rep.Kept, d)
		} else {
			rep.Remove = append(rep.Remove, d)
		}
	}
	if o.DryRun {
		return rep, nil
	}
	for _, d := range rep.Remove {
		// The backup first, as locally: a sidecar without its backup is
		// harmless, a backup without its checksum cannot be proven.
		for _, n := range []string{d.Name, d.Name + manifest.SHA256Suffix, d.Name + manifest.JSONSuffix} {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			if err := retry(func() error { return r.Delete(ctx, n) }); err != nil {
				return rep, err
			}
			rep.Removed = append(rep.Removed, n)
		}
	}
	return rep, nil
}

func readManifest(ctx context.Context, r Remote, name string) (*manifest.Manifest, error) {
	rc, err := r.Get(ctx, name+manifest.JSONSuffix)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var m manifest.Manifest
	if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("read %s%s: %w", name, manifest.JSONSuffix, err)
	}
	return &m, nil
}

// Entry is one backup on a remote, for list.
type Entry struct {
	retention.Backup
	// Complete: the backup and both sidecars are there.
	Complete bool   `json:"complete"`
	SHA256   string `json:"sha256,omitempty"` // as its .sha256 sidecar records
}

// List describes the backups on a remote, newest first; dbs narrows to
// those database file names.
func List(ctx context.Context, r Remote, dbs []string, loc *time.Location) ([]Entry, error) {
	if loc == nil {
		loc = time.Local
	}
	objs, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	sortObjects(objs)
	have := map[string]bool{}
	for _, ob := range objs {
		have[ob.Name] = true
	}
	var bs []retention.Backup
	for _, ob := range objs {
		d, t, seq, comp, ok := retention.Parse(ob.Name, loc)
		if !ok || (len(dbs) > 0 && !contains(dbs, d)) {
			continue
		}
		b := retention.Backup{Path: ob.Name, Name: ob.Name, DB: d, Time: t, Seq: seq, Compression: comp, Kind: retention.KindOf(ob.Name), Size: ob.Size, ModTime: ob.ModTime}
		if strings.HasSuffix(ob.Name, encrypt.Suffix) {
			b.Encryption = "age"
		}
		bs = append(bs, b)
	}
	retention.SortNewestFirst(bs)
	out := make([]Entry, 0, len(bs))
	for _, b := range bs {
		e := Entry{Backup: b, Complete: have[b.Name+manifest.SHA256Suffix] && have[b.Name+manifest.JSONSuffix]}
		if have[b.Name+manifest.SHA256Suffix] {
			if s, err := readSHA256(ctx, r, b.Name); err == nil {
				e.SHA256 = s
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// readSHA256 reads a remote .sha256 sidecar (sha256sum format naming name).
func readSHA256(ctx context.Context, r Remote, name string) (string, error) {
	rc, err := r.Get(ctx, name+manifest.SHA256Suffix)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || len(f[0]) != 64 || strings.TrimPrefix(f[1], "*") != name {
		return "", fmt.Errorf("%s%s: not a sha256sum line for %s", name, manifest.SHA256Suffix, name)
	}
	return strings.ToLower(f[0]), nil
}

// Fetch downloads a remote backup and its sidecars into dir (which the
// caller creates private and removes), checking the download against the
// .sha256 sidecar, and returns the local path of the backup. A backup
// without its .sha256 is refused: it cannot be proven intact.
func Fetch(ctx context.Context, r Remote, name, dir string, progress func(done, total int64)) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return "", fmt.Errorf("remote backup name %q: give a file name", name)
	}
	sum, err := readSHA256(ctx, r, name)
	if errors.Is(err, ErrNotExist) {
		if _, serr := r.Stat(ctx, name); serr != nil {
			return "", serr
		}
		return "", fmt.Errorf("%s has no %s sidecar on the remote: its upload is incomplete and it cannot be proven intact", name, manifest.SHA256Suffix)
	}
	if err != nil {
		return "", err
	}
	st, err := r.Stat(ctx, name)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name)
	h := sha256.New()
	if err := download(ctx, r, name, dst, h, progress, st.Size); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return "", &DamagedError{Name: name, Got: got, Want: sum}
	}
	for _, s := range []string{manifest.SHA256Suffix, manifest.JSONSuffix} {
		err := download(ctx, r, name+s, dst+s, io.Discard, nil, 0)
		if err != nil && !(s == manifest.JSONSuffix && errors.Is(err, ErrNotExist)) {
			return "", err
		}
	}
	return dst, nil
}

func download(ctx context.Context, r Remote, name, dst string, h io.Writer, progress func(done, total int64), total int64) error {
	rc, err := r.Get(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	// dst is in a private directory made for this download: O_EXCL is
	// enough, and nothing reads it before Fetch returns.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	var w io.Writer = f
	if progress != nil {
		w = &progressWriter{w: f, fn: func(n int64) { progress(n, total) }}
	}
	_, err = io.CopyBuffer(io.MultiWriter(w, h), rc, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", name, ctxOr(ctx, err))
	}
	return nil
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

type progressWriter struct {
	w    io.Writer
	fn   func(int64)
	done int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.fn(p.done)
	return n, err
}
