// Package backup runs one whole backup of a database so that cron can
// run the tool for years unattended: row counts (and with Deep a content
// hash) taken inside the snapshot, the .sha256 and .json sidecars, the
// shrink guard against the previous verified backup, and pruning by the
// retention policy, all while the backup directory's lock is held.
// Pruning happens only after the new backup passed verification, and
// never when the shrink guard fired; it never removes a point a kept
// point of an incremental chain needs. With Incremental the run is a
// point of a chain (incremental.go): an increment on the newest point
// when it can be, else a full that starts a new chain. List and Prune
// work on a backup directory on their own, for the list and prune
// commands.
package backup

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/content"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/remote"
)

// Options for one backup with its sidecars and pruning.
type Options struct {
	Backup snapshot.Options
	// Policy prunes older backups of the same database after a verified
	// backup into Backup.Dir (never with an explicit Backup.Path).
	Policy retention.Policy
	// Deep adds a logical content hash to the manifest.
	Deep bool
	// ShrinkGuard is the percentage fall of any table's row count that
	// raises the alarm (0: off).
	ShrinkGuard float64
	ToolVersion string
	// Identities open the sealed row counts of earlier encrypted backups
	// for the shrink guard; without them the guard cannot compare with
	// an encrypted backup and says so (Report.GuardNote).
	Identities []age.Identity
	// Loc is the time zone of backup names (default time.Local).
	Loc *time.Location
	// Remotes get their copies after the backup is published; local
	// pruning then keeps what a remote lacks (offsite.go).
	Remotes Remotes
	// MinFree is the floor of free space a new backup must leave on the
	// backup file system; a run that would go below it writes nothing.
	MinFree MinFree
	// Incremental, if set, makes the run a point of an incremental chain
	// (incremental.go). It needs Backup.Dir and MethodBackup.
	Incremental *Incremental
}

// Report is what one run did.
type Report struct {
	*snapshot.Result
	SHA256   string            `json:"sha256"`
	Manifest string            `json:"manifest"`
	Rows     int64             `json:"rows"`
	Content  string            `json:"content_sha256,omitempty"`
	Shrink   []manifest.Shrink `json:"shrink_warnings,omitempty"`
	Compared string            `json:"compared_with,omitempty"`
	Prune    *PruneReport      `json:"prune,omitempty"`
	Skipped  string            `json:"prune_skipped,omitempty"` // why pruning did not run
	// ContentError says why the manifest has no row counts.
	ContentError string `json:"content_error,omitempty"`
	// GuardNote says why the shrink guard did not compare.
	GuardNote string `json:"shrink_guard_note,omitempty"`
	// Remotes is what happened on each remote (Options.Remotes).
	Remotes []*remote.SyncReport `json:"remotes,omitempty"`
	// RemoteNote says why the backup was not sent to the remotes.
	RemoteNote string `json:"-"`
	// Damaged are older local backups whose bytes no longer match their
	// .sha256: not sent off-site; the others were.
	Damaged []Damaged `json:"damaged,omitempty"`
	// KeptForRemotes are local backups the retention rules would have
	// removed, kept because a remote lacks them (a remote failed).
	KeptForRemotes []string `json:"kept_for_remotes,omitempty"`
	// RemotesPruneSkipped says why no remote was pruned.
	RemotesPruneSkipped string `json:"remotes_prune_skipped,omitempty"`
	// RemoteErr is the remotes' failure, LocalErr one of the local
	// backup's after it was published (sidecars, pruning); the run's
	// error joins them.
	RemoteErr error `json:"-"`
	LocalErr  error `json:"-"`
	// Chain places the backup in an incremental chain (Incremental).
	Chain *manifest.Chain `json:"chain,omitempty"`
	// FullReason says why an incremental run took a full backup.
	FullReason string `json:"full_reason,omitempty"`
	// CheckNote says why an increment's materialized check, though due,
	// did not run.
	CheckNote string `json:"check_note,omitempty"`
	// Replica is what the run wrote into the database's Litestream
	// replica (--layout litestream).
	Replica *chain.ReplicaReport `json:"litestream,omitempty"`
	// CheckOff: no materialized check runs on this chain (VerifyNone).
	CheckOff bool               `json:"-"`
	manifest *manifest.Manifest // as written
	// prechecked are older local backups an incremental run hashed
	// against their .sha256 before building on them (nil: intact), so
	// that the off-site check need not read them again.
	prechecked map[string]error
}

// LocalOK says the local backup stands: published, with its sidecars,
// and nothing failed here after that.
func (r *Report) LocalOK() bool { return r != nil && r.Result != nil && r.LocalErr == nil }

// Why pruning was skipped after a backup (Report.Skipped).
const (
	SkipExplicit    = "explicit --backup file"
	SkipUnverified  = "the new backup was not verified"
	SkipShrink      = "shrink guard fired"
	SkipInterrupted = "interrupted"
	// SkipGuardBlind: the shrink guard could not read the previous
	// backup's (encrypted) row counts. Pruning without it could remove
	// the last good backup before a mass deletion, so it waits for
	// --identity or --shrink-guard 0.
	SkipGuardBlind = "shrink guard could not compare"
)

// Run takes one backup (internal/snapshot), writes its sidecars, guards
// against a sharp shrink, sends it to the remotes and prunes by the
// retention policy: the whole run of one database, in one call.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Loc == nil {
		opts.Loc = time.Local
	}
	// Before anything is written: room for it, and remotes that can
	// take it.
	if err := checkFree(opts); err != nil {
		return nil, err
	}
	if len(opts.Remotes.URLs) > 0 && opts.Backup.Path == "" {
		if err := preflight(ctx, opts); err != nil {
			return nil, err
		}
	}
	if opts.Incremental != nil {
		return runIncremental(ctx, opts)
	}
	return runFull(ctx, opts, nil)
}

// counter takes the row counts (and with Deep the content hash) of the
// snapshot a backup holds, for its manifest.
type counter struct {
	deep          bool
	snap          *content.Result
	err           error // why there are none
	sqliteVersion string
}

func (c *counter) hook(ctx context.Context, conn *sql.Conn) error {
	if err := conn.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&c.sqliteVersion); err != nil {
		return err
	}
	var err error
	if c.deep {
		c.snap, err = content.Hash(ctx, conn)
	} else {
		c.snap, err = content.Count(ctx, conn)
	}
	if err != nil && ctx.Err() == nil {
		// Not a reason to lose the backup: a damaged source is for
		// integrity_check to judge (exit 3), anything else is noted.
		c.snap, c.err = nil, err
		return nil
	}
	return err
}

// fullChain makes a full backup start an incremental chain.
type fullChain struct {
	reason   string // why a full, not an increment
	lockHeld bool   // the run holds the backup directory's lock
	rec      *manifest.Chain
}

// runFull takes a full backup; with fc, one that starts a chain: its
// pages are indexed from the checked copy before it is compressed or
// encrypted, and its manifest records the chain.
func runFull(ctx context.Context, opts Options, fc *fullChain) (*Report, error) {
	from := "source"
	if opts.Backup.Method == snapshot.MethodVacuum {
		from = "copy"
	}
	cnt := &counter{deep: opts.Deep}
	bo := opts.Backup
	bo.Snapshot = cnt.hook
	rep := &Report{}
	if fc != nil {
		rep.FullReason = fc.reason
		bo.LockHeld = fc.lockHeld
		bo.Checked = func(ctx context.Context, plain string) error {
			dir, err := filepath.Abs(bo.Dir)
			if err != nil {
				return err
			}
			db := filepath.Base(bo.Source)
			if bo.Phase != nil {
				bo.Phase("index")
			}
			c, err := chain.IndexFull(ctx, chain.FullOptions{Path: plain, DB: db, Index: pageindex.Path(dir, db)})
			if err != nil {
				return err
			}
			if opts.litestream() {
				// Above every TXID the replica has seen: the snapshot
				// 1-TXID is newer than all of them.
				if c.TXID, err = chain.NextTXID(dir, db, opts.Loc); err != nil {
					return err
				}
			}
			fc.rec = &c
			return nil
		}
	}
	bo.Published = func(ctx context.Context, res *snapshot.Result) error {
		rep.Result = res
		if cnt.err != nil {
			rep.ContentError = fmt.Sprintf("row counts not recorded: %v", cnt.err)
		}
		var rec *manifest.Chain
		if fc != nil {
			rec = fc.rec
		}
		// The backup is in place: its sidecars are written even if a
		// signal comes now (they do not look at ctx), so that what was
		// published is complete; only pruning stops early, and the run
		// still reports the backup it made.
		if err := published(opts, res, cnt, from, rep, rec); err != nil {
			return err
		}
		lerr := syncReplica(ctx, opts, rep)
		return joinLocal(lerr, afterPublished(ctx, opts, rep))
	}
	res, err := snapshot.Run(ctx, bo)
	if res == nil {
		return nil, err
	}
	rep.Result = res
	rep.LocalErr = err
	// An incremental run sends after letting the directory's lock go
	// (runIncremental), as snapshot.Run has let it go here: the local
	// prune that follows the remotes takes it again.
	if err == nil && len(opts.Remotes.URLs) > 0 && fc == nil {
		err = sendOffsite(ctx, opts, rep)
	}
	return rep, err
}

// VerifyProven is snapshot.Result.Verify of an increment whose proof
// held when it was written and whose materialized state was not checked
// by this run (its Check is "none"); "ok" when it was.
const VerifyProven = "proven"

// verified says a backup passed what it must pass before it may be
// pruned by, or sent off-site: its check (a full), its proof (an
// increment).
func verified(res *snapshot.Result) bool {
	return res.Verify == "ok" || res.Verify == VerifyProven
}

// published writes a published backup's .sha256 and .json (with rec,
// its place in a chain) and runs the shrink guard.
func published(opts Options, res *snapshot.Result, cnt *counter, from string, rep *Report, rec *manifest.Chain) error {
	snap, sqliteVersion := cnt.snap, cnt.sqliteVersion
	now := time.Now
	if opts.Backup.Now != nil {
		now = opts.Backup.Now // the injected clock of tests
	}
	finished := now()
	// The file copy hashed the bytes as it wrote them; read the file
	// again only when nothing did.
	sum := res.SHA256
	if sum == "" {
		if opts.Backup.Phase != nil {
			opts.Backup.Phase("hash")
		}
		var err error
		if sum, err = manifest.FileSHA256(res.Path); err != nil {
			return err
		}
	}
	if err := manifest.WriteSHA256(res.Path, sum); err != nil {
		return err
	}
	rep.SHA256 = sum
	var srcSize int64
	if fi, err := os.Stat(res.Source); err == nil {
		srcSize = fi.Size()
	}
	dir := filepath.Dir(res.Path)
	var owner string
	if len(opts.Remotes.URLs) > 0 && opts.Backup.Path == "" {
		// A directory that sends off-site needs its ID before its first
		// backup goes: the manifest says whose the backup is.
		var err error
		if owner, err = ownerID(dir); err != nil {
			return err
		}
	} else {
		owner, _ = readOwnerID(dir)
	}
	m := &manifest.Manifest{
		Version:       manifest.Version,
		Backup:        filepath.Base(res.Path),
		Source:        res.Source,
		Host:          hostName(),
		BackupDir:     dir,
		Owner:         owner,
		SourceSize:    srcSize,
		SourcePages:   res.Pages,
		PageSize:      res.PageSize,
		SQLiteVersion: sqliteVersion,
		Method:        string(res.Method),
		Compression:   string(res.Compression),
		Size:          res.Size,
		Uncompressed:  res.Uncompressed,
		SHA256:        sum,
		Started:       res.Started,
		Finished:      finished,
		DurationMS:    finished.Sub(res.Started).Milliseconds(),
		ToolVersion:   opts.ToolVersion,
		Verify:        res.Verify,
		Check:         string(res.Check),
		ShrinkGuard:   opts.ShrinkGuard,
		ContentError:  rep.ContentError,
	}
	if res.Verify == "ok" {
		m.VerifiedAt = &finished
	}
	if rec != nil {
		c := *rec
		if c.Kind == manifest.KindFull && res.Verify == "ok" {
			c.Checked, c.CheckedAt = string(res.Check), &finished
		}
		if c.CheckedAt != nil {
			m.VerifiedAt = c.CheckedAt
		}
		m.Chain = &c
		rep.Chain = &c
	}
	if snap != nil {
		c := &manifest.Content{From: from, SHA256: snap.SHA256}
		if snap.SHA256 != "" {
			c.Algorithm = content.Algorithm
		}
		for _, t := range snap.Tables {
			c.Tables = append(c.Tables, manifest.Table{Name: t.Name, Rows: t.Rows, SHA256: t.SHA256})
		}
		m.Content = c
		rep.Rows = c.TotalRows()
		rep.Content = c.SHA256
	}

	if opts.ShrinkGuard > 0 && m.Content != nil {
		prev, pm, note := previousVerified(dir, res, opts.Loc, opts.Identities)
		rep.GuardNote = note
		if pm != nil {
			m.ComparedWith = filepath.Base(prev)
			m.ShrinkWarnings = Shrunk(pm.Content, m.Content, opts.ShrinkGuard)
			rep.Compared, rep.Shrink = m.ComparedWith, m.ShrinkWarnings
		}
	}
	written := m
	if res.Encryption != "" {
		// Table names, counts and hashes tell about the data: beside
		// ciphertext they are sealed to the same recipients.
		sealed := *m
		if err := sealed.Seal(opts.Backup.Recipients); err != nil {
			return err
		}
		written = &sealed
	}
	if err := manifest.Write(res.Path, written); err != nil {
		return err
	}
	rep.Manifest = res.Path + manifest.JSONSuffix
	rep.manifest = m
	if opts.Backup.Path == "" {
		recorded, err := recordGuard(dir, res, m, opts.ShrinkGuard)
		if err != nil {
			return err
		}
		if recorded && rep.GuardNote != "" {
			rep.GuardNote += "; the next run compares with this backup's counts, now recorded there"
		}
	}
	return nil
}

// afterPublished prunes after a published backup whose sidecars are
// written, unless something says not to (Report.Skipped), or the
// remotes must have their copies first (offsite.go).
func afterPublished(ctx context.Context, opts Options, rep *Report) error {
	res, m := rep.Result, rep.manifest
	dir := filepath.Dir(res.Path)
	switch {
	case opts.Backup.Path != "":
		rep.Skipped = SkipExplicit
		return nil
	case !verified(res):
		rep.Skipped = SkipUnverified
		return nil
	case len(m.ShrinkWarnings) > 0:
		rep.Skipped = SkipShrink
		return nil
	case rep.GuardNote != "" && !opts.Policy.KeepsAll():
		rep.Skipped = SkipGuardBlind
		return nil
	case opts.Policy.KeepsAll(), len(opts.Remotes.URLs) > 0:
		return nil
	}
	pr, err := prune(ctx, dir, res.Source, opts.Policy, false, opts.Loc, res.Path, nil)
	rep.Prune = pr
	if err != nil && ctx.Err() != nil {
		// Interrupted between removals: the new backup and everything
		// not yet removed are intact; the next run prunes the rest.
		rep.Skipped = SkipInterrupted
		return nil
	}
	return err
}

// previousVerified finds the newest other backup of the same source
// whose manifest says it was verified and has row counts. When that
// backup's counts are sealed, they come from the directory's guard
// state if it records exactly that file, else from opening them with
// ids; when neither works the guard does not fall back on an older
// backup: it says why it did not compare.
func previousVerified(dir string, res *snapshot.Result, loc *time.Location, ids []age.Identity) (string, *manifest.Manifest, string) {
	bs, err := retention.Find(dir, filepath.Base(res.Source), loc)
	if err != nil {
		return "", nil, ""
	}
	for _, b := range bs {
		if b.Path == res.Path {
			continue
		}
		m, err := manifest.Read(b.Path)
		if err != nil || m.Source != res.Source || !m.Verified() {
			continue
		}
		if m.Sealed != "" {
			// The counts this host recorded for exactly this file come
			// first: no key needed (guardstate.go).
			if c := guardCounts(dir, res.Source, b, m); c != nil {
				m.Content = c
				return b.Path, m, ""
			}
			if len(ids) == 0 {
				return "", nil, fmt.Sprintf("shrink guard did not compare: the row counts of %s are encrypted and %s has no record of them; give --identity to compare", b.Name, GuardStateName)
			}
			if err := m.Open(b.Path+manifest.JSONSuffix, ids); err != nil {
				return "", nil, fmt.Sprintf("shrink guard did not compare: %v", err)
			}
		}
		if m.Content == nil {
			continue
		}
		return b.Path, m, ""
	}
	return "", nil, ""
}

// Shrunk lists the tables whose row count fell by more than pct percent
// from before to after (a table that disappeared fell by 100%).
func Shrunk(before, after *manifest.Content, pct float64) []manifest.Shrink {
	now := after.Rows()
	var out []manifest.Shrink
	for _, t := range before.Tables {
		if t.Rows <= 0 {
			continue
		}
		n := now[t.Name]
		fell := float64(t.Rows-n) * 100 / float64(t.Rows)
		if fell > pct {
			out = append(out, manifest.Shrink{Table: t.Name, Before: t.Rows, After: n, Percent: fell})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out
}
