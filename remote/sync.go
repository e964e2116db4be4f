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

// Local is a local backup that may go off-site, with the SHA-256 its
// .sha256 sidecar records.
type Local struct {
	retention.Backup
	SHA256 string
	// Parent is the point an increment applies to (its manifest's
	// chain.parent); empty for a full or a backup outside any chain.
	Parent string
}

// Outgoing selects the backups of o's database in dir that may leave the
// machine, newest first, and says for each other one why it stays
// ("NAME: why"): only verified backups of this database made by this
// directory go; with encrypted (a run with -r/-R) only encrypted backups
// with sealed manifests, so that turning encryption on never sends the
// plaintext backups and clear manifests made before it.
func Outgoing(dir string, o Owner, encrypted bool, loc *time.Location) ([]Local, []string, error) {
	if loc == nil {
		loc = time.Local
	}
	bs, err := retention.Find(dir, filepath.Base(o.Source), loc)
	if err != nil {
		return nil, nil, err
	}
	var out []Local
	var stay []string
	for _, b := range bs {
		m, err := manifest.Read(b.Path)
		switch {
		case err != nil:
			stay = append(stay, b.Name+": no readable manifest")
			continue
		case m.Source != "" && m.Source != o.Source:
			continue // another database with the same file name
		case m.Owner != "" && o.ID != "" && m.Owner != o.ID:
			stay = append(stay, b.Name+": made by another backup directory (owner "+m.Owner+")")
			continue
		case !m.Verified():
			stay = append(stay, b.Name+": not verified")
			continue
		case encrypted && !sealed(b, m):
			stay = append(stay, b.Name+": "+NotEncrypted)
			continue
		}
		sum, err := manifest.ReadSHA256(b.Path)
		if err != nil {
			stay = append(stay, b.Name+": "+err.Error())
			continue
		}
		l := Local{Backup: b, SHA256: sum}
		if m.Chain != nil && m.Chain.Kind == manifest.KindIncrement {
			l.Parent = m.Chain.Parent
		}
		out = append(out, l)
	}
	return out, stay, nil
}

// NotEncrypted is why a plaintext backup stays here in a run with
// encryption on.
const NotEncrypted = "not encrypted (made before -r/-R): with encryption on, only encrypted backups and sealed manifests leave this machine"

// sealed says that a backup and its manifest tell nothing in the clear:
// an .age file whose manifest holds no content outside its sealed part.
func sealed(b retention.Backup, m *manifest.Manifest) bool {
	return b.Encryption == "age" && m.Encryption == "age" && m.Content == nil && m.ContentError == "" && len(m.ShrinkWarnings) == 0
}

// SyncOptions say how local backups go to a remote.
type SyncOptions struct {
	Dir   string // local backup directory
	Owner Owner  // whose backups these are; Owner.Source's base name selects them
	// Check, if set, proves a local backup intact before it is sent (its
	// bytes against its .sha256); one it fails is not sent and is named
	// in SyncReport.Damaged, and the others still go.
	Check func(Local) error
	// Attempts and Backoff bound the retries of a transient failure.
	Attempts int
	Backoff  time.Duration
	Progress func(name string, done, total int64)
	// Phase, if set, is told how an upload of name is being checked
	// once its bytes went out (PhaseServerHash, PhaseReadBack).
	Phase func(name, phase string)
	Loc   *time.Location
}

// ReplicaSync is what a run sent of a Litestream replica to one remote.
type ReplicaSync struct {
	Uploaded []string `json:"uploaded"`
	Removed  []string `json:"removed"`
}

// SyncReport is what one run did on one remote.
type SyncReport struct {
	Remote   string   `json:"remote"`
	Uploaded []string `json:"uploaded"`
	Present  int      `json:"already_present"`
	Skipped  []string `json:"skipped,omitempty"` // local backups not sent, with why
	// Damaged are local backups not sent because their bytes no longer
	// match their .sha256 (also in Skipped, with the sums).
	Damaged []string `json:"damaged,omitempty"`
	// Pending are local backups this remote still lacks after the run:
	// they stay here until it has them.
	Pending []string `json:"pending,omitempty"`
	// HeldBack are increments not sent because a point of their chain
	// is neither on the remote nor could be sent (damaged here, not
	// verified): a remote holds only points it can restore. Each is in
	// Skipped with why.
	HeldBack []string `json:"held_back,omitempty"`
	Removed  []string `json:"removed"`
	// Litestream is what went to, and left, the remote's copy of the
	// database's Litestream replica (--layout litestream), by the
	// names Litestream reads there.
	Litestream *ReplicaSync `json:"litestream,omitempty"`
	Kept       int          `json:"kept"`
	Pruned     bool         `json:"pruned"`
	Bytes      int64        `json:"bytes_uploaded"`
	// DurationMS is the whole exchange with this remote: listing,
	// uploads with their checks, sidecars and pruning.
	DurationMS int64 `json:"duration_ms"`
	// Error is why this remote failed (its URL is in Remote), Hint what
	// to do about it.
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	// Held is what the remote holds of the owner's backups, complete
	// (name to SHA-256), as this run last saw it; nil if it was not
	// listed.
	Held map[string]string `json:"-"`
}

// Sync uploads the local backups that the remote lacks (out, from
// Outgoing; newest first), each with its sidecars after it. The points
// of an incremental chain go parents first: before an increment, every
// point of its chain the remote lacks, oldest first; an increment whose
// chain has a point that is neither there nor can be sent is held back
// (SyncReport.HeldBack). So a run cut short anywhere leaves on the
// remote only points whose whole chain is there. It refuses a
// place that holds another owner's backups of this database, and
// removes what interrupted uploads of the owner's own backups left
// (their names are those of the backups in o.Dir): the caller must hold
// the directory's off-site lock, so no other run is sending them. It
// stops at the first failure; it never prunes (Prune, once every remote
// has its copies).
func Sync(ctx context.Context, r Remote, url string, out []Local, o SyncOptions) (*SyncReport, error) {
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
	retry := func(fn func() error) error { return Retry(ctx, o.Attempts, o.Backoff, fn) }
	inv, err := inspect(ctx, r, o.Owner, o.Loc, retry)
	if err != nil {
		return rep, err
	}
	rep.Held = map[string]string{}
	for _, b := range inv.mine {
		rep.Held[b.Name] = inv.manifests[b.Name].SHA256
	}
	if err := inv.conflict(url, o.Owner); err != nil {
		return rep, err
	}
	// Stale: an upload of a backup in this directory. Under the off-site
	// lock no other run sends them, and another owner's uploads have
	// other names (a same-second name is refused below).
	local, err := retention.Find(o.Dir, filepath.Base(o.Owner.Source), o.Loc)
	if err != nil {
		return rep, err
	}
	ours := map[string]bool{}
	for _, b := range local {
		ours[b.Name] = true
	}
	stale := func(name string, _ time.Time) bool { return ours[trimSidecar(name)] }
	if err := retry(func() error { return r.Cleanup(ctx, stale) }); err != nil {
		return rep, err
	}

	have := inv.objs
	complete := func(b Local) bool {
		ob, ok := have[b.Name]
		_, s1 := have[b.Name+manifest.SHA256Suffix]
		_, s2 := have[b.Name+manifest.JSONSuffix]
		return ok && ob.Size == b.Size && s1 && s2
	}
	// one sends b unless the remote has it: "" once it is there, else
	// why it is not.
	one := func(b Local) (string, error) {
		if _, ok := have[b.Name+manifest.SHA256Suffix]; ok {
			// Same name, other bytes: another database with this file
			// name, or another owner's backup of the same second, sends
			// to the same place. Neither is overwritten.
			var theirs string
			if err := retry(func() (err error) { theirs, err = readSHA256(ctx, r, b.Name); return err }); err != nil {
				return "", err
			}
			if theirs != b.SHA256 {
				return "", hint.Wrap(&Error{URL: url, Kind: KindConflict, Err: fmt.Errorf("it already holds a different %s (sha256 %s, this one %s): another database or backup directory with the file name %s sends here", b.Name, theirs, b.SHA256, filepath.Base(o.Owner.Source))},
					"give each database and backup directory its own remote directory or prefix")
			}
			if complete(b) {
				rep.Present++
				return "", nil
			}
		}
		if o.Check != nil {
			if err := o.Check(b); err != nil {
				rep.Damaged = append(rep.Damaged, b.Name)
				rep.Skipped = append(rep.Skipped, b.Name+": "+err.Error())
				return "is damaged here", nil
			}
		}
		if err := upload(ctx, r, b, o, retry); err != nil {
			return "", err
		}
		rep.Uploaded = append(rep.Uploaded, b.Name)
		rep.Bytes += b.Size
		rep.Held[b.Name] = b.SHA256
		have[b.Name] = Object{Name: b.Name, Size: b.Size}
		have[b.Name+manifest.SHA256Suffix] = Object{}
		have[b.Name+manifest.JSONSuffix] = Object{}
		return "", nil
	}
	sendable := map[string]Local{}
	for _, b := range out {
		sendable[b.Name] = b
	}
	// cause[name] is "" once the point and its whole chain are on the
	// remote, else why they cannot be (the first point at fault).
	cause := map[string]*string{}
	var ensure func(name string) (string, error)
	ensure = func(name string) (string, error) {
		if c, ok := cause[name]; ok {
			if c == nil {
				return name + "'s chain loops", nil // a parent names its child
			}
			return *c, nil
		}
		cause[name] = nil
		var why string
		b, ok := sendable[name]
		parent := b.Parent
		if !ok {
			// Not sent from here: usable only if it is there whole.
			m := inv.manifests[name]
			if m == nil {
				why = name + " is not on the remote, and it is not among the backups that may leave here"
				cause[name] = &why
				return why, nil
			}
			if m.Chain != nil && m.Chain.Kind == manifest.KindIncrement {
				parent = m.Chain.Parent
			}
		}
		if parent != "" {
			pw, err := ensure(parent)
			if err != nil {
				return "", err
			}
			if pw != "" {
				why = pw
				if ok {
					rep.HeldBack = append(rep.HeldBack, name)
					rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: held back (a remote gets an increment only with its whole chain): %s", name, pw))
				}
				cause[name] = &why
				return why, nil
			}
		}
		if ok {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			w, err := one(b)
			if err != nil {
				return "", err
			}
			if w != "" {
				why = name + " " + w
			}
		}
		cause[name] = &why
		return why, nil
	}
	for _, b := range out {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if _, err := ensure(b.Name); err != nil {
			return rep, err
		}
	}
	return rep, nil
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
func upload(ctx context.Context, r Remote, b Local, o SyncOptions, retry func(func() error) error) error {
	f, err := os.Open(b.Path)
	if err != nil {
		return fmt.Errorf("open backup %q: %w", b.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat backup %q: %w", b.Path, err)
	}
	src := Source{R: f, Size: fi.Size(), SHA256: b.SHA256}
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
	Owner    Owner  // only this owner's backups of Owner.Source are pruned
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
	// Foreign backups have this database's file name but another owner
	// (source or backup directory) in their manifest; Incomplete ones
	// lack a sidecar. Neither is touched.
	Foreign    []string `json:"foreign,omitempty"`
	Incomplete []string `json:"incomplete,omitempty"`
}

// Prune applies the policy to the owner's complete backups of one
// database on a remote, with the same care as locally: only this
// database's exact names, never one whose manifest names another owner.
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
	inv, err := inspect(ctx, r, o.Owner, o.Loc, retry)
	if err != nil {
		return rep, err
	}
	rep.Incomplete = inv.incomplete
	for _, f := range inv.foreign {
		rep.Foreign = append(rep.Foreign, f.name)
	}
	mine := inv.mine
	links := map[string]retention.Link{} // a kept point keeps what it needs
	for _, b := range mine {
		links[b.Name] = retention.Link{}
		if m := inv.manifests[b.Name]; m != nil && m.Chain != nil {
			links[b.Name] = retention.Link{Kind: m.Chain.Kind, Parent: m.Chain.Parent}
		}
	}
	protect := map[string]string{}
	if o.Newest != "" {
		protect[filepath.Base(o.Newest)] = "just made"
	}
	// As locally (backup.Prune): a backup that tripped the shrink guard
	// and the last one before it outlive every rule until a person
	// removes the flagged one.
	for i, b := range mine {
		if !inv.manifests[b.Name].Flagged() {
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
	// Parent is the point an increment applies to, by its manifest;
	// Missing names a point its chain needs that the remote does not
	// hold whole (an orphan: it cannot be restored from there).
	Parent  string `json:"parent,omitempty"`
	Missing string `json:"missing,omitempty"`

	hasSHA256 bool
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
	out := entries(objs, dbs, loc)
	byName := map[string]*Entry{}
	for i, e := range out {
		byName[e.Name] = &out[i]
		if e.hasSHA256 {
			if s, err := readSHA256(ctx, r, e.Name); err == nil {
				out[i].SHA256 = s
			}
		}
		if e.Kind == retention.KindIncrement && e.Complete {
			m, err := readManifest(ctx, r, e.Name)
			if err != nil {
				out[i].Missing = fmt.Sprintf("(its manifest: %v)", err)
				continue
			}
			if m.Chain != nil {
				out[i].Parent = m.Chain.Parent
			}
		}
	}
	// An increment's chain, followed by the parents' manifests: every
	// point of it must be there whole.
	for i, e := range out {
		if e.Kind != retention.KindIncrement || !e.Complete || e.Missing != "" {
			continue
		}
		seen := map[string]bool{e.Name: true}
		for p := e.Parent; ; {
			pe := byName[p]
			if p == "" || pe == nil || !pe.Complete || seen[p] {
				out[i].Missing = p
				if p == "" {
					out[i].Missing = "(its manifest names no parent)"
				}
				break
			}
			if pe.Kind != retention.KindIncrement {
				break
			}
			seen[p] = true
			p = pe.Parent
		}
	}
	return out, nil
}

// entries picks the backups of dbs (all if empty) out of a listing,
// newest first.
func entries(objs []Object, dbs []string, loc *time.Location) []Entry {
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
		s1 := have[b.Name+manifest.SHA256Suffix]
		out = append(out, Entry{Backup: b, Complete: s1 && have[b.Name+manifest.JSONSuffix], hasSHA256: s1})
	}
	return out
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
	// Parsed as sha256sum -c parses it: a name with spaces is one name.
	for _, line := range strings.Split(string(b), "\n") {
		if sum, n, ok := manifest.ParseSHA256Line(line); ok && n == name {
			return sum, nil
		}
	}
	return "", fmt.Errorf("%s%s: not a sha256sum line for %s", name, manifest.SHA256Suffix, name)
}

// Fetch downloads a remote backup and its sidecars into dir (which the
// Fetch downloads a remote backup and its sidecars into dir (which the
// caller creates private and removes), checking the download against the
// .sha256 sidecar, and returns the local path of the backup. A backup
// without its .sha256 is refused: it cannot be proven intact.
func Fetch(ctx context.Context, r Remote, name, dir string, progress func(done, total int64)) (string, error) {
	// A base name here and there: no separator of either side's paths
	// (a backslash is one only where filepath says so).
	if name == "" || strings.Contains(name, "/") || filepath.Base(name) != name || name == "." || name == ".." {
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
	// No fsync: the download is a private temp copy that verify reads
	// (from the page cache) and removes, or restore copies into place
	// (and fsyncs there); a crash loses the directory either way. Its
	// writeback cost 0.5-1 s a GB and met the restore's own.
	_, err = io.CopyBuffer(io.MultiWriter(w, h), rc, make([]byte, 1<<20))
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
