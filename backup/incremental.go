package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/internal/sys/lock"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// Incremental makes a run a point of an incremental chain (package
// chain): an increment of the pages that differ from the newest point
// of this database in the backup directory, or a full backup that
// starts a new chain when there is nothing to build on, when Policy
// says the chain is long or old enough, or when the increment finds
// that it cannot be one (an unusable page index, a page size change,
// more than Policy.MaxChanged of the pages changed).
type Incremental struct {
	Policy chain.Policy
	// CheckEvery is how long a chain may grow without a materialized
	// check: when its newest checked point (a full is checked when it
	// is taken) is older, the new increment's materialized state is
	// checked (integrity_check, or quick_check with VerifyQuick) before
	// it is published. 0 checks every increment; with VerifyNone none is.
	CheckEvery time.Duration
	// Layout "litestream" (chain.LayoutLitestream) also writes every
	// point into the database's Litestream replica beside the backups
	// (litestream.go); not with encryption.
	Layout string
}

// litestream says the run writes the Litestream layout.
func (o Options) litestream() bool {
	return o.Incremental != nil && o.Incremental.Layout == chain.LayoutLitestream
}

// runIncremental is Run with Incremental: under the backup directory's
// lock, which point is the head, whether an increment can be written,
// the increment or the full; then, the lock let go as after any backup,
// the remotes.
func runIncremental(ctx context.Context, opts Options) (*Report, error) {
	rep, err := writePoint(ctx, opts)
	if rep != nil {
		rep.LocalErr = err
	}
	// A Litestream replica that could not be written fails the run but
	// holds back no off-site copy of the published point.
	_, onlyReplica := err.(*replicaError)
	if (err == nil || onlyReplica) && rep != nil && len(opts.Remotes.URLs) > 0 {
		err = errors.Join(err, sendOffsite(ctx, opts, rep))
	}
	return rep, err
}

// replicaError is a Litestream replica (--layout litestream) that could
// not be written after its point was published.
type replicaError struct{ err error }

func (e *replicaError) Error() string { return e.err.Error() }
func (e *replicaError) Unwrap() error { return e.err }

// writePoint writes the next point of the chain, holding the lock.
func writePoint(ctx context.Context, opts Options) (*Report, error) {
	bo := opts.Backup
	switch {
	case bo.Path != "":
		return nil, hint.Wrap(errors.New("an incremental backup is one point of a chain in a backup directory, not a file of its own"),
			"sqlite-backup --source %s --backup-dir /backup --incremental", hint.Quote(bo.Source))
	case bo.Method == snapshot.MethodVacuum:
		return nil, hint.Wrap(errors.New("an incremental backup needs method backup: VACUUM INTO rewrites every page"),
			"sqlite-backup --source %s --incremental --method backup", hint.Quote(bo.Source))
	case opts.litestream() && len(bo.Recipients) > 0:
		return nil, hint.Wrap(errors.New("--layout litestream writes files Litestream restores, which are never encrypted; it cannot be used with -r/-R"),
			"sqlite-backup --source %s --backup-dir /backup --incremental --layout litestream", hint.Quote(bo.Source))
	}
	dir, err := filepath.Abs(bo.Dir)
	if err != nil {
		return nil, fmt.Errorf("backup dir %q: %w", bo.Dir, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		// Nothing to build on; snapshot.Run says what is wrong with the
		// directory as it does for every backup.
		return runFull(ctx, opts, &fullChain{reason: "no earlier backup of this database to build on"})
	}
	lk, err := lock.Acquire(ctx, dir, bo.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer lk.Release()
	// Holding the lock, any temp file of ours in the directory belongs
	// to a run that died: remove it (snapshot.Run would, without the
	// lock held for it).
	snapshot.RemoveStaleTemps(dir)

	src := bo.Source
	if src != "" {
		if src, err = filepath.Abs(src); err != nil {
			return nil, fmt.Errorf("source %q: %w", bo.Source, err)
		}
	}
	removeOrphanSidecars(dir, filepath.Base(src), opts.Loc)
	if err := shared(dir, src, opts.Loc); err != nil {
		return nil, err
	}
	now := time.Now
	if bo.Now != nil {
		now = bo.Now
	}
	h := findHead(dir, src, opts.Loc)
	reason := h.why
	if reason == "" {
		// A chain is encrypted whole or not at all: a restore needs one
		// kind of key for all of it, and no point of a chain the user now
		// wants encrypted rests on plaintext written since.
		was, is := strings.HasSuffix(h.head.Path, encrypt.Suffix), len(bo.Recipients) > 0
		switch {
		case was && !is:
			reason = "the chain is encrypted and this run is not (no -r/-R)"
		case !was && is:
			reason = "the chain is not encrypted and this run is (-r/-R)"
		}
	}
	if reason == "" && opts.litestream() && h.head.Chain.TXID == 0 {
		// Its increments would have no TXID to continue.
		reason = "the chain was written without --layout litestream"
	}
	if reason == "" {
		reason = opts.Incremental.Policy.Decide(h.head, h.fullTime, now())
	}
	var pre map[string]error
	if reason == "" {
		reason, pre = trusted(ctx, opts, dir, src, h)
	}
	if reason == "" {
		rep, err := writeIncrement(ctx, opts, dir, src, h)
		why, full := chain.IsNeedFull(err)
		if !full {
			if rep != nil {
				rep.prechecked = pre
			}
			return rep, err
		}
		reason = why
	}
	rep, err := runFull(ctx, opts, &fullChain{reason: reason, lockHeld: true})
	if rep != nil {
		rep.prechecked = pre
	}
	return rep, err
}

// trusted says why the chain of h may not be built on ("" if it may),
// and what it hashed. An increment builds only on points that passed
// their proof: in a run that verifies, every point of the chain must be
// verified (a full made with --no-verify was never checked, and stays
// here when the rest goes off-site). In a run with remotes, every point
// of the chain that some remote lacks (by what each held when last
// listed) is hashed against its .sha256 first: one that no longer
// matches stays here, so an increment on it could reach no remote whole
// (and locally rests on a damaged file); the run takes a full instead.
// The hashes are the off-site check's, done before the increment.
func trusted(ctx context.Context, opts Options, dir, src string, h head) (string, map[string]error) {
	if opts.Backup.Verify != snapshot.VerifyNone {
		for _, p := range h.pts {
			m, err := manifest.Read(p.Path)
			if err != nil {
				return fmt.Sprintf("the chain's %s has no readable manifest: %v", p.Name(), err), nil
			}
			if !m.Verified() {
				return fmt.Sprintf("the chain's %s was not verified (verify %q): an increment builds only on checked points", p.Name(), m.Verify), nil
			}
		}
	}
	if len(opts.Remotes.URLs) == 0 || opts.Backup.Verify == snapshot.VerifyNone {
		return "", nil // nothing of this run goes off-site
	}
	state := loadState(dir)
	pre := map[string]error{}
	for _, p := range h.pts {
		lacked := false
		for _, url := range opts.Remotes.URLs {
			if state.get(remote.Redact(url), src)[p.Name()] != p.SHA256 {
				lacked = true
			}
		}
		if !lacked {
			continue
		}
		if err := ctx.Err(); err != nil {
			return "", pre
		}
		if opts.Backup.Phase != nil {
			opts.Backup.Phase("hash")
		}
		sum, err := manifest.FileSHA256(p.Path)
		if err == nil && sum != p.SHA256 {
			err = fmt.Errorf("its sha256 is now %s, its .sha256 says %s", sum, p.SHA256)
		}
		if err != nil {
			err = fmt.Errorf("damaged here: %w", err)
			pre[p.Path] = err
			return fmt.Sprintf("the chain's %s is %v", p.Name(), err), pre
		}
		pre[p.Path] = nil
	}
	return "", pre
}

// shared refuses a backup directory where another database with the
// same file name keeps incremental chains: both would use the one page
// index <db-file>.pageindex, each run replacing the other's, so every
// run would be a full (an increment is never built on the other's
// index: its digest is not the one the parent's manifest records). The
// manifests say whose each point is. A database no longer at its path
// (moved, removed) keeps no chain going and is not in the way.
func shared(dir, src string, loc *time.Location) error {
	db := filepath.Base(src)
	bs, err := retention.Find(dir, db, loc)
	if err != nil {
		return nil // snapshot.Run says what is wrong with the directory
	}
	for _, b := range bs {
		m, err := manifest.Read(b.Path)
		if err != nil || m.Chain == nil || m.Source == "" || m.Source == src {
			continue
		}
		theirs, err := os.Stat(m.Source)
		if err != nil {
			continue
		}
		if ours, err := os.Stat(src); err == nil && os.SameFile(ours, theirs) {
			continue // the same file by another path
		}
		other := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-"+filepath.Base(filepath.Dir(src)))
		return hint.Wrap(fmt.Errorf("backup dir %q holds incremental backups of another database with the file name %s (%s, newest %s): the two would share the page index %s and neither could build an increment; give each its own backup directory",
			dir, db, m.Source, b.Name, pageindex.Path(dir, db)),
			"sqlite-backup --source %s --backup-dir %s --incremental", hint.Quote(src), hint.Quote(other))
	}
	return nil
}

// removeOrphanSidecars removes the sidecars of increments of db whose
// file is not there: a run killed between writing them and the rename
// (the sidecars come first, chain.IncrementOptions.Describe). The
// caller holds dir's lock, so no live run is between the two.
func removeOrphanSidecars(dir, db string, loc *time.Location) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range es {
		if !e.Type().IsRegular() {
			continue
		}
		for _, suffix := range []string{manifest.SHA256Suffix, manifest.JSONSuffix} {
			base, ok := strings.CutSuffix(e.Name(), suffix)
			if !ok || retention.KindOf(base) != retention.KindIncrement {
				continue
			}
			if d, _, _, _, ok := retention.Parse(base, loc); !ok || d != db {
				continue
			}
			if _, err := os.Lstat(filepath.Join(dir, base)); errors.Is(err, fs.ErrNotExist) {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// head is the newest point of a database and its chain, or why there is
// none to build on.
type head struct {
	head     *chain.Point
	pts      []chain.Point // its chain, full first
	fullTime time.Time     // when the chain's full was taken
	why      string
}

// findHead finds the newest backup of src in dir. It is the head only
// if its manifest places it in a chain that can be followed to its full
// with every file there; else why says why a full is needed.
func findHead(dir, src string, loc *time.Location) head {
	db := filepath.Base(src)
	l, err := chain.Load(dir, db, src, loc)
	if err != nil {
		return head{why: err.Error()}
	}
	bs, err := retention.Find(dir, db, loc)
	if err != nil {
		return head{why: err.Error()}
	}
	var newest *retention.Backup
	for i, b := range bs {
		if _, ok := l.Points[b.Name]; ok {
			newest = &bs[i]
			break
		}
		if why, ok := l.Not[b.Name]; ok {
			return head{why: fmt.Sprintf("the newest backup %s cannot be built on: %s", b.Name, why)}
		}
		// Another database's with the same file name: not ours.
	}
	if newest == nil {
		return head{why: "no earlier backup of this database to build on"}
	}
	pts, err := l.Resolve(newest.Name)
	if err != nil {
		return head{why: fmt.Sprintf("the chain of %s cannot be followed: %v", newest.Name, err)}
	}
	last := pts[len(pts)-1]
	h := head{head: &last, pts: pts}
	m, err := manifest.Read(pts[0].Path)
	if err != nil || m.Started.IsZero() {
		return head{why: fmt.Sprintf("the chain's full backup %s has no start time in its manifest", pts[0].Name())}
	}
	h.fullTime = m.Started
	return h
}

// lastChecked is when the newest point of a chain whose materialized
// state was checked was checked (zero if none was).
func lastChecked(pts []chain.Point) time.Time {
	var t time.Time
	for _, p := range pts {
		if p.Chain.Checked != "" && p.Chain.CheckedAt != nil && p.Chain.CheckedAt.After(t) {
			t = *p.Chain.CheckedAt
		}
	}
	return t
}

// writeIncrement writes the increment on h.head: its name is taken now
// (the snapshot is pinned right after), its row counts come from the
// snapshot it holds, it is checked materialized when the chain's last
// check is older than CheckEvery, sealed when encrypted, and gets its
// sidecars before the page index moves on. A chain.NeedFullError means
// nothing was published and a full is due.
func writeIncrement(ctx context.Context, opts Options, dir, src string, h head) (*Report, error) {
	bo := opts.Backup
	now := time.Now
	if bo.Now != nil {
		now = bo.Now
	}
	db := filepath.Base(src)
	suffix := retention.IncrementSuffix
	if len(bo.Recipients) > 0 {
		suffix += encrypt.Suffix
	}
	taken := now()
	path, err := snapshot.NextName(dir, db, taken, suffix)
	if err != nil {
		return nil, err
	}
	cnt := &counter{deep: opts.Deep}
	rep := &Report{CheckOff: bo.Verify == snapshot.VerifyNone}
	check := snapshot.VerifyNone
	if bo.Verify != snapshot.VerifyNone {
		check = bo.Verify
		if check == "" {
			check = snapshot.VerifyFull
		}
	}
	checkDue := check != snapshot.VerifyNone && taken.Sub(lastChecked(h.pts)) >= opts.Incremental.CheckEvery
	io := chain.IncrementOptions{
		Source:      src,
		Parent:      *h.head,
		Index:       pageindex.Path(dir, db),
		Path:        path,
		MaxChanged:  opts.Incremental.Policy.MaxChanged,
		BusyTimeout: bo.BusyTimeout,
		Now:         now,
		Snapshot:    cnt.hook,
	}
	if bo.Phase != nil {
		bo.Phase("copy")
	}
	if checkDue {
		io.Check = func(ctx context.Context, p *chain.Point) error {
			err := checkMaterialized(ctx, opts, dir, h.pts, p, check == snapshot.VerifyQuick)
			var nc *noCheck
			if errors.As(err, &nc) {
				rep.CheckNote = nc.why
				return nil
			}
			if err != nil {
				return err
			}
			at := now()
			p.Chain.Checked, p.Chain.CheckedAt = string(check), &at
			return nil
		}
	}
	if len(bo.Recipients) > 0 {
		io.Seal = func(ctx context.Context, tmp string) (string, string, error) {
			if bo.Phase != nil {
				bo.Phase("encrypt")
			}
			etmp, err := fsx.CreateEmptyTemp(dir, db, 0o600)
			if err != nil {
				return "", "", fmt.Errorf("create backup in %q: %w", dir, err)
			}
			s, err := encrypt.Seal(ctx, tmp, etmp, compress.None, bo.Recipients, bo.EncryptProgress)
			if err != nil {
				os.Remove(etmp)
				return "", "", err
			}
			return etmp, s.SHA256, nil
		}
	}
	started := time.Now()
	// The sidecars are written under the final name before the rename
	// (chain.IncrementOptions.Describe): no increment is ever there
	// without its manifest, which alone says what it applies to.
	io.Describe = func(ctx context.Context, p *chain.Point, size int64) (func(), error) {
		undo := func() {
			os.Remove(p.Path + manifest.SHA256Suffix)
			os.Remove(p.Path + manifest.JSONSuffix)
		}
		for _, s := range []string{manifest.SHA256Suffix, manifest.JSONSuffix} {
			if _, err := os.Lstat(p.Path + s); err == nil {
				return nil, fmt.Errorf("increment %q: %s exists; refusing to overwrite it", p.Path, p.Path+s)
			}
		}
		res := &snapshot.Result{
			Source:      src,
			Path:        p.Path,
			Size:        size,
			Pages:       int(p.Chain.Pages),
			PageSize:    p.Chain.PageSize,
			Method:      snapshot.MethodBackup,
			Verify:      VerifyProven,
			Check:       snapshot.VerifyNone,
			Compression: compress.None,
			Started:     taken,
			Copier:      snapshot.Copier(p.Chain.Read),
			SHA256:      p.SHA256,
			Duration:    time.Since(started),
		}
		if real, err := filepath.EvalSymlinks(src); err == nil && real != src {
			res.SourceTarget = real
		}
		if f, err := os.Open(src); err == nil {
			if hdr, err := sqlitefile.ReadHeader(f); err == nil {
				res.SourceWAL = hdr.WAL
			}
			f.Close()
		}
		switch {
		case p.Chain.Checked != "":
			res.Verify, res.Check = "ok", snapshot.VerifyMode(p.Chain.Checked)
		case rep.CheckOff:
			// As a full with --no-verify: not pruned by, not sent.
			res.Verify = "skipped"
		}
		if len(bo.Recipients) > 0 {
			res.Encryption = "age"
		}
		rep.Result = res
		if cnt.err != nil {
			rep.ContentError = fmt.Sprintf("row counts not recorded: %v", cnt.err)
		}
		if opts.litestream() {
			p.Chain.TXID = h.head.Chain.TXID + 1
		}
		// Written whatever ctx says, as for a full: what is published
		// is complete. An error here publishes nothing.
		return undo, published(opts, res, cnt, "source", rep, &p.Chain)
	}
	inc, err := chain.WriteIncrement(ctx, io)
	if inc == nil {
		if fe := (*verify.FailedError)(nil); errors.As(err, &fe) && fe.Result.Path == src {
			return nil, hint.Wrap(fmt.Errorf("backup of %q failed %s as materialized, so it was not kept: %w", src, fe.Result.Check, err),
				"the source itself may be damaged; check it with: sqlite-backup verify %s", hint.Quote(src))
		}
		return nil, err
	}
	rep.Result.Duration = time.Since(started)
	if err != nil {
		return rep, err
	}
	lerr := syncReplica(ctx, opts, rep)
	return rep, joinLocal(lerr, afterPublished(ctx, opts, rep))
}

// joinLocal joins a replica's error and pruning's, leaving the first as
// it is when it is the only one (runIncremental tells it apart).
func joinLocal(replica, prune error) error {
	if prune == nil {
		return replica
	}
	return errors.Join(replica, prune)
}

// syncReplica writes the new point's file, and any other a killed run
// left unwritten, into the database's Litestream replica (--layout
// litestream), holding the directory's lock. A failure leaves the
// point published and fails the run: the replica is behind until the
// next run writes what is missing.
func syncReplica(ctx context.Context, opts Options, rep *Report) error {
	if !opts.litestream() || rep.Result == nil {
		return nil
	}
	dir := filepath.Dir(rep.Result.Path)
	rr, err := chain.SyncReplica(ctx, dir, filepath.Base(rep.Result.Source), opts.Loc, false)
	rep.Replica = rr
	if err != nil {
		return &replicaError{fmt.Errorf("backup %q is kept, but its Litestream replica was not written: %w", rep.Result.Path, err)}
	}
	return nil
}

// noCheck says why a materialized check that was due could not run.
type noCheck struct{ why string }

func (e *noCheck) Error() string { return e.why }

// checkMaterialized materializes the chain pts + p (p still under its
// temp name) into a temp file in dir and checks it. Damage to an older
// file of the chain means a full (the new increment would only extend a
// broken chain); a failed check of the database itself fails the run,
// as a full's failed check does.
func checkMaterialized(ctx context.Context, opts Options, dir string, pts []chain.Point, p *chain.Point, quick bool) error {
	if opts.Backup.Phase != nil {
		opts.Backup.Phase("verify")
	}
	all := append(append([]chain.Point(nil), pts...), *p)
	op, err := chain.OpenChain(ctx, all, chain.OpenOptions{Identities: opts.Identities, TempDir: dir})
	if errors.Is(err, chain.ErrNeedIdentity) {
		return &noCheck{why: fmt.Sprintf("the materialized check was due but not run: the chain of %s is encrypted; give --identity to check it", filepath.Base(opts.Backup.Source))}
	}
	if err == nil {
		defer op.Release()
		_, err = op.Materialize(ctx, chain.MaterializeOptions{Quick: quick, TempDir: dir})
	}
	var fe *verify.FailedError
	switch {
	case errors.As(err, &fe) && fe.Result.Path != p.Path:
		return &chain.NeedFullError{Reason: fmt.Sprintf("the chain is damaged: %v", err)}
	case errors.As(err, &fe):
		fe.Result.Path = opts.Backup.Source
		if s, e := filepath.Abs(opts.Backup.Source); e == nil {
			fe.Result.Path = s
		}
		return err
	}
	return err
}
