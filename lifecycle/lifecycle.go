// Package lifecycle runs what happens around one backup so that cron can
// run the tool for years unattended: row counts (and with Deep a content
// hash) taken inside the snapshot, the .sha256 and .json sidecars, the
// shrink guard against the previous verified backup, and pruning by the
// retention policy, all while the backup directory's lock is held.
// Pruning happens only after the new backup passed verification, and
// never when the shrink guard fired.
package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"sqlite-backup/backup"
	"sqlite-backup/content"
	"sqlite-backup/fsx"
	"sqlite-backup/lock"
	"sqlite-backup/manifest"
	"sqlite-backup/retention"
)

// Options for one backup with its lifecycle.
type Options struct {
	Backup backup.Options
	// Policy prunes older backups of the same database after a verified
	// backup into Backup.Dir (never with an explicit Backup.Path).
	Policy retention.Policy
	// Deep adds a logical content hash to the manifest.
	Deep bool
	// ShrinkGuard is the percentage fall of any table's row count that
	// raises the alarm (0: off).
	ShrinkGuard float64
	ToolVersion string
	// Loc is the time zone of backup names (default time.Local).
	Loc *time.Location
}

// Report is what one run did.
type Report struct {
	*backup.Result
	SHA256   string            `json:"sha256"`
	Manifest string            `json:"manifest"`
	Rows     int64             `json:"rows"`
	Content  string            `json:"content_sha256,omitempty"`
	Shrink   []manifest.Shrink `json:"shrink_warnings,omitempty"`
	Compared string            `json:"compared_with,omitempty"`
	Prune    *PruneReport      `json:"prune,omitempty"`
	Skipped  string            `json:"prune_skipped,omitempty"` // why pruning did not run
	// ContentError says why the manifest has no row counts.
	ContentError string             `json:"content_error,omitempty"`
	manifest     *manifest.Manifest // as written
}

// Why pruning was skipped after a backup (Report.Skipped).
const (
	SkipExplicit    = "explicit --backup file"
	SkipUnverified  = "the new backup was not verified"
	SkipShrink      = "shrink guard fired"
	SkipInterrupted = "interrupted"
)

// Run takes one backup and does the rest of its lifecycle.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Loc == nil {
		opts.Loc = time.Local
	}
	var snap *content.Result
	var snapErr error
	var sqliteVersion string
	from := "source"
	if opts.Backup.Method == backup.MethodVacuum {
		from = "copy"
	}
	bo := opts.Backup
	bo.Snapshot = func(ctx context.Context, conn *sql.Conn) error {
		if err := conn.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&sqliteVersion); err != nil {
			return err
		}
		var err error
		if opts.Deep {
			snap, err = content.Hash(ctx, conn)
		} else {
			snap, err = content.Count(ctx, conn)
		}
		if err != nil && ctx.Err() == nil {
			// Not a reason to lose the backup: a damaged source is for
			// integrity_check to judge (exit 3), anything else is noted.
			snap, snapErr = nil, err
			return nil
		}
		return err
	}
	rep := &Report{}
	bo.Published = func(ctx context.Context, res *backup.Result) error {
		rep.Result = res
		if snapErr != nil {
			rep.ContentError = fmt.Sprintf("row counts not recorded: %v", snapErr)
		}
		// The backup is in place: its sidecars are written even if a
		// signal comes now (they do not look at ctx), so that what was
		// published is complete; only pruning stops early, and the run
		// still reports the backup it made.
		return published(ctx, opts, res, snap, from, sqliteVersion, rep)
	}
	res, err := backup.Run(ctx, bo)
	if res == nil {
		return nil, err
	}
	rep.Result = res
	return rep, err
}

func published(ctx context.Context, opts Options, res *backup.Result, snap *content.Result, from, sqliteVersion string, rep *Report) error {
	now := time.Now
	if opts.Backup.Now != nil {
		now = opts.Backup.Now // the injected clock of tests
	}
	finished := now()
	// The file copy hashed the bytes as it wrote them; read the file
	// again only when nothing did.
	sum := res.SHA256
	if sum == "" {
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
	m := &manifest.Manifest{
		Version:       manifest.Version,
		Backup:        filepath.Base(res.Path),
		Source:        res.Source,
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

	dir := filepath.Dir(res.Path)
	if opts.ShrinkGuard > 0 && m.Content != nil {
		prev, pm := previousVerified(dir, res, opts.Loc)
		if pm != nil {
			m.ComparedWith = filepath.Base(prev)
			m.ShrinkWarnings = Shrunk(pm.Content, m.Content, opts.ShrinkGuard)
			rep.Compared, rep.Shrink = m.ComparedWith, m.ShrinkWarnings
		}
	}
	if err := manifest.Write(res.Path, m); err != nil {
		return err
	}
	rep.Manifest = res.Path + manifest.JSONSuffix
	rep.manifest = m

	switch {
	case opts.Backup.Path != "":
		rep.Skipped = SkipExplicit
		return nil
	case res.Verify != "ok":
		rep.Skipped = SkipUnverified
		return nil
	case len(m.ShrinkWarnings) > 0:
		rep.Skipped = SkipShrink
		return nil
	case opts.Policy.KeepsAll():
		return nil
	}
	pr, err := prune(ctx, dir, res.Source, opts.Policy, false, opts.Loc, res.Path)
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
// whose manifest says it was verified and has row counts.
func previousVerified(dir string, res *backup.Result, loc *time.Location) (string, *manifest.Manifest) {
	bs, err := retention.Find(dir, filepath.Base(res.Source), loc)
	if err != nil {
		return "", nil
	}
	for _, b := range bs {
		if b.Path == res.Path {
			continue
		}
		m, err := manifest.Read(b.Path)
		if err != nil || m.Source != res.Source || m.Verify != "ok" || m.Content == nil {
			continue
		}
		return b.Path, m
	}
	return "", nil
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

// PruneOptions for pruning on its own (the prune command).
type PruneOptions struct {
	Dir         string
	Source      string // database whose backups are pruned
	Policy      retention.Policy
	DryRun      bool
	LockTimeout time.Duration
	Loc         *time.Location
}

// PruneReport says what pruning kept and removed (or would, dry run).
type PruneReport struct {
	Policy  string               `json:"policy"`
	DryRun  bool                 `json:"dry_run,omitempty"`
	Kept    []retention.Decision `json:"kept"`
	Remove  []retention.Decision `json:"remove"`
	Removed []retention.Removed  `json:"removed"`
	// Foreign are backups with this database's file name whose manifest
	// names another source: never touched.
	Foreign []string `json:"foreign,omitempty"`
}

// Prune applies the policy to the backups of one database, holding the
// directory lock like a backup run does.
func Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	if opts.Loc == nil {
		opts.Loc = time.Local
	}
	src, err := filepath.Abs(opts.Source)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("backup dir %q: %w", opts.Dir, fsx.PathErr(err))
	}
	lk, err := lock.Acquire(ctx, dir, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer lk.Release()
	return prune(ctx, dir, src, opts.Policy, opts.DryRun, opts.Loc, "")
}

// NewestWritten is the reason the standalone prune gives for keeping the
// backup with the newest modification time.
const NewestWritten = "newest by modification time"

// prune applies p; newest, if set, is the backup just made, kept
// whatever its name sorts like.
func prune(ctx context.Context, dir, src string, p retention.Policy, dryRun bool, loc *time.Location, newest string) (*PruneReport, error) {
	rep := &PruneReport{Policy: p.String(), DryRun: dryRun, Kept: []retention.Decision{}, Remove: []retention.Decision{}, Removed: []retention.Removed{}}
	all, err := retention.Find(dir, filepath.Base(src), loc)
	if err != nil {
		return rep, err
	}
	var mine []retention.Backup
	protect := map[string]string{}
	if newest != "" {
		protect[newest] = "just made"
	}
	for _, b := range all {
		m, err := manifest.Read(b.Path)
		if err == nil && m.Source != "" && m.Source != src {
			rep.Foreign = append(rep.Foreign, b.Path)
			continue
		}
		mine = append(mine, b)
	}
	if newest == "" && len(mine) > 0 {
		// Standalone prune: Plan keeps the newest by name, but a name's
		// local time has no UTC offset (DST fall-back, runs under another
		// TZ), so also keep the last one written. mine is newest by name
		// first and ties stay with it: only a different file gets the
		// extra reason. (After a backup, "just made" is the last written.)
		w := 0
		for i := range mine {
			if mine[i].ModTime.After(mine[w].ModTime) {
				w = i
			}
		}
		if _, ok := protect[mine[w].Path]; !ok && w > 0 {
			protect[mine[w].Path] = NewestWritten
		}
	}
	// A backup that tripped the shrink guard and the last one before it
	// (the last known good state) outlive every rule until a person
	// removes the flagged one: the flag is what keeps the pair.
	for i, b := range mine {
		m, err := manifest.Read(b.Path)
		if err != nil || len(m.ShrinkWarnings) == 0 {
			continue
		}
		protect[b.Path] = "shrink warning"
		if i+1 < len(mine) {
			protect[mine[i+1].Path] = "last before the shrink warning of " + b.Name
		}
	}
	for _, d := range retention.Plan(mine, p, protect) {
		if d.Keep {
			rep.Kept = append(rep.Kept, d)
		} else {
			rep.Remove = append(rep.Remove, d)
		}
	}
	if dryRun {
		return rep, nil
	}
	for _, d := range rep.Remove {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rm, err := retention.Remove(d.Backup)
		rep.Removed = append(rep.Removed, rm...)
		if err != nil {
			return rep, err
		}
	}
	if len(rep.Removed) > 0 {
		fsx.SyncDir(dir)
	}
	return rep, nil
}
