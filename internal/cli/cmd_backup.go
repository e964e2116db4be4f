package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/config"
	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/journal"
	"sqlite-backup/internal/output/metrics"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/remote"
)

// BackupCmd takes one verified backup.
type BackupCmd struct {
	BackupSettings `embed:""`
	Verify         []string `placeholder:"FILE" sep:"none" env:"-" help:"Verify FILE instead of taking a backup (same as the verify command)."`
}

// BackupSettings are the backup's flags that the config command shows
// with their values and origins.
type BackupSettings struct {
	Backup      string        `placeholder:"FILE" help:"Write the backup to FILE instead of a timestamped name in --backup-dir. FILE must not exist."`
	Method      string        `enum:"backup,vacuum" default:"backup" help:"backup: SQLite's online backup API in one read transaction; vacuum: VACUUM INTO (compacted copy, slower). One of: ${enum}."`
	NoVerify    bool          `xor:"check" help:"Skip the integrity check of the new backup (not recommended)."`
	Quick       bool          `xor:"check" help:"Check the new backup with quick_check instead of the full integrity_check."`
	LockTimeout time.Duration `default:"0s" placeholder:"DUR" help:"How long to wait for another run using the same backup directory (default: fail at once)."`
	Compress    string        `enum:"none,zstd,gzip" default:"none" help:"Compress the verified backup: zstd (.zst), gzip (.gz) or none (default ${default})."`
	Deep        bool          `help:"Also record a logical hash of every row in the manifest, for verify --deep."`
	ShrinkGuard int           `default:"50" placeholder:"PCT" help:"Warn and skip pruning if any table lost more than PCT% of its rows since the previous verified backup (0: off; default ${default})."`
	MetricsFile string        `placeholder:"PATH" help:"Record the outcome in PATH (*.prom) for the node_exporter textfile collector, replaced atomically."`
	Remote      []string      `placeholder:"URL" help:"Also send each verified backup with its sidecars to URL: sftp://user@host[:port]/abs/dir or s3://bucket[/prefix]; repeat for several. The --keep rules then apply there too, after a checked upload."`
	MinFree     string        `default:"5%" placeholder:"SIZE|PCT" help:"Take no backup that would leave less free space than this on the backup file system: a size (500M, 2G) or a percentage of it (0: no floor; default ${default})."`
	IncrementalFlags
	RetentionFlags
	EncryptFlags
	// Identities here let the shrink guard read an encrypted previous
	// backup's row counts.
	IdentityFlags
	RemoteFlags
}

func (c *BackupCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	if len(c.Verify) > 0 {
		if originOf(kctx, "source").Origin == config.FromFlag || c.Backup != "" {
			return usagef("sqlite-backup --verify /backup/app.db.20250101_120000", "--verify checks existing files; it cannot be combined with --source or --backup")
		}
		v := VerifyCmd{Files: c.Verify, Quick: c.Quick, IdentityFlags: c.IdentityFlags, RemoteFlags: c.RemoteFlags}
		return v.Run(ctx, kctx, g)
	}
	rcpts, err := c.recipients()
	if err != nil {
		return err
	}
	ids, err := c.identities()
	if err != nil {
		return err
	}
	if c.Backup != "" && originOf(kctx, "backup-dir").Origin != config.FromDefault {
		return usagef("sqlite-backup --source app.db --backup /backup/app.db.bak", "--backup FILE and --backup-dir DIR both say where to write; give one")
	}
	mf, err := metrics.Open(c.MetricsFile) // nil without --metrics-file
	if err != nil {
		return err
	}
	srcs, err := findSources(kctx, g)
	if err != nil {
		return err
	}
	if len(srcs) > 1 && c.Backup != "" {
		return usagef("sqlite-backup --source a.db --source b.db --backup-dir /backup", "--backup FILE names one file; with several --source use --backup-dir")
	}
	if c.ShrinkGuard < 0 || c.ShrinkGuard > 100 {
		return usagef("sqlite-backup --source app.db --shrink-guard 50", "--shrink-guard %v: give a percentage from 0 (off) to 100", c.ShrinkGuard)
	}
	pol, err := c.RetentionFlags.policy()
	if err != nil {
		return err
	}
	minFree, err := backup.ParseMinFree(c.MinFree)
	if err != nil {
		return usagef("sqlite-backup --source app.db --min-free 2G", "%v", err)
	}
	incr, err := c.IncrementalFlags.options(kctx, c.Backup, c.Method, len(rcpts) > 0)
	if err != nil {
		return err
	}
	var failed int
	var firstErr error
	var done []string // published so far, for an interruption's message
	for _, src := range srcs {
		bo := snapshot.Options{
			Source:      src.Path,
			Dir:         g.BackupDir,
			Path:        c.Backup,
			Method:      snapshot.Method(c.Method),
			Verify:      snapshot.VerifyFull,
			BusyTimeout: g.BusyTimeout,
			LockTimeout: c.LockTimeout,
			Compress:    compress.Kind(c.Compress),
			Recipients:  rcpts,
		}
		switch {
		case c.NoVerify:
			bo.Verify = snapshot.VerifyNone
		case c.Quick:
			bo.Verify = snapshot.VerifyQuick
		}
		tty := newTTYStatus(g.stderr(), src.Path)
		bo.Progress, bo.VerifyProgress, bo.Phase = tty.copyProgress(), tty.checkProgress("verify"), tty.phaseFn()
		if len(rcpts) > 0 {
			bo.EncryptProgress = tty.encryptProgress()
		}
		rep, err := backup.Run(ctx, backup.Options{
			Backup:      bo,
			Policy:      pol,
			Deep:        c.Deep,
			ShrinkGuard: float64(c.ShrinkGuard),
			ToolVersion: buildInfo().Version,
			Identities:  ids,
			Remotes:     c.remotes(g.stderr()),
			MinFree:     minFree,
			Incremental: incr,
		})
		tty.clear()
		var published *snapshot.Result // set once the backup is in place
		var remotes []*remote.SyncReport
		if rep != nil {
			published, remotes = rep.Result, rep.Remotes
		}
		if remotes == nil { // the remotes' errors carry their own hints
			err = backupHint(err, src.Path, g.BackupDir, c.Backup)
		}
		if published != nil {
			done = append(done, published.Path)
		}
		if rep != nil && rep.RemoteNote != "" {
			fmt.Fprintf(g.stderr(), "sqlite-backup: note: %s %s\n", redact.Printable(published.Path), rep.RemoteNote)
		}
		for _, r := range remotes {
			err = errors.Join(err, mf.RecordRemote(src.Path, r.Remote, r.Error == "", time.Duration(r.DurationMS)*time.Millisecond, len(r.Pending)))
		}
		if remotes != nil {
			err = errors.Join(err, mf.RecordDamaged(src.Path, len(rep.Damaged)))
		}
		err = errors.Join(err, mf.RecordBackup(src.Path, published, err))
		switch {
		case g.JSON && rep != nil && rep.Result != nil:
			warnShrink(g.stderr(), rep)
			printPruned(io.Discard, g.stderr(), rep)
			warnOffsite(g.stderr(), rep)
			g.addResult(backupResult(rep, len(rcpts), remotes, err))
		case g.JSON:
			g.addResult(failedResult(src.Path, "", err))
		case rep != nil:
			if perr := printBackup(g.stdout, g.stderr(), rep, remotes); err == nil {
				err = perr
			}
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return doneWith(err, "already published", done)
		}
		if len(srcs) == 1 {
			return err
		}
		// Each database on its own: report, go on with the others.
		failed++
		if firstErr == nil {
			firstErr = err
		}
		printError(g.stderr(), err)
	}
	if failed > 0 {
		// An interruption may have come after the last publish (its
		// prune is then skipped): the message must still name it.
		return doneWith(&severalFailed{what: "databases", failed: failed, total: len(srcs), first: firstErr}, "already published", done)
	}
	return nil
}

// remotes turns --remote and its flags into the run's off-site options.
func (c *BackupCmd) remotes(stderr io.Writer) backup.Remotes {
	attempts, backoff := remoteRetry()
	return backup.Remotes{
		URLs:     c.Remote,
		Options:  c.RemoteFlags.options(),
		Attempts: attempts,
		Backoff:  backoff,
		Progress: func(url string) (func(name string, done, total int64), func(name, phase string), func()) {
			u := newUploadLine(stderr, url)
			if u == nil {
				return nil, nil, func() {}
			}
			return u.progress, u.phase, u.done
		},
	}
}

// backupJSON is one database's result in a backup's --json report.
// Check names the check that ran ("none" with --no-verify) and OK says
// the whole run went well for this database, as in verify and restore.
type backupJSON struct {
	*snapshot.Result
	OK         bool   `json:"ok"`
	Check      string `json:"check"`
	Verify     string `json:"verify,omitempty"` // hides snapshot.Result's: "check" and "ok" say it
	DurationMS int64  `json:"duration_ms"`
	// Recipients is how many age recipients an encrypted backup
	// (encryption "age") was sealed for.
	Recipients int `json:"recipients,omitempty"`
	runFields
	// Remotes is what happened on each --remote (absent without one).
	// With remotes, LocalOK says the local backup stands whatever they
	// did, and RemotesOK whether every remote has its copies.
	Remotes             []*remote.SyncReport `json:"remotes,omitempty"`
	LocalOK             *bool                `json:"local_ok,omitempty"`
	RemotesOK           *bool                `json:"remotes_ok,omitempty"`
	Damaged             []backup.Damaged     `json:"damaged,omitempty"`
	KeptForRemotes      []string             `json:"kept_for_remotes,omitempty"`
	RemotesPruneSkipped string               `json:"remotes_prune_skipped,omitempty"`
	Error               string               `json:"error,omitempty"`
	// Hint is the error's, or with none the way out of a skipped prune.
	Hint string `json:"hint,omitempty"`
}

func backupResult(rep *backup.Report, recipients int, remotes []*remote.SyncReport, err error) backupJSON {
	r := rep.Result
	b := backupJSON{Result: r, OK: err == nil, Check: string(r.Check), DurationMS: r.Duration.Milliseconds(), runFields: fieldsOf(rep), Remotes: remotes}
	if r.Encryption != "" {
		b.Recipients = recipients
	}
	if remotes != nil {
		local, all := rep.LocalOK(), rep.RemoteErr == nil
		b.LocalOK, b.RemotesOK = &local, &all
		b.Damaged, b.KeptForRemotes, b.RemotesPruneSkipped = rep.Damaged, rep.KeptForRemotes, rep.RemotesPruneSkipped
	}
	if r.Verify == "skipped" {
		b.Check = "none"
	}
	if rep.Skipped == backup.SkipGuardBlind {
		b.Hint = guardBlindHint
	}
	if err != nil {
		b.Error, b.Hint = err.Error(), hint.Of(err)
	}
	return b
}

// guardBlindHint names both ways out when the shrink guard could not
// read an encrypted backup's row counts and pruning waited.
const guardBlindHint = "add -i KEY (a key that opens the backups, for the shrink guard) or --shrink-guard 0 (prune without the guard) to this command"

func printBackup(w, errw io.Writer, rep *backup.Report, remotes []*remote.SyncReport) error {
	r := rep.Result
	warnShrink(errw, rep)
	verdict := string(r.Check) + " ok"
	if r.Encryption != "" {
		verdict += ", encrypted with age (proven to decrypt)"
	}
	if r.Verify == "skipped" {
		verdict = "NOT VERIFIED (--no-verify)"
	}
	if c := rep.Chain; c != nil && c.Kind == manifest.KindIncrement {
		// What an increment proved, and whether its materialized state
		// was checked: an unchecked point says so.
		on := "on " + c.Parent
		if c.Base != c.Parent {
			on += ", full " + c.Base
		}
		proof := "proven; " + checkName(r) + " of the materialized chain not due (--check-every)"
		switch {
		case c.Checked != "":
			proof = "proven, materialized " + c.Checked + " ok"
		case rep.CheckOff:
			proof = "proven; materialized check NOT RUN (--no-verify)"
		case rep.CheckNote != "":
			proof = "proven; materialized check due but NOT RUN (see the note)"
		}
		if r.Encryption != "" {
			proof += ", encrypted with age (proven to decrypt)"
		}
		verdict = fmt.Sprintf("increment %d %s, %d pages changed, %s", c.Seq, on, c.Changed, proof)
	}
	if rep.CheckNote != "" {
		fmt.Fprintf(errw, "sqlite-backup: note: %s: %s\n", redact.Printable(r.Path), rep.CheckNote)
	}
	full := ""
	if rep.FullReason != "" {
		full = "; full backup: " + rep.FullReason
	}
	_, err := fmt.Fprintf(w, "%s: %s, %d bytes, %d pages, %s%s\n", redact.Printable(r.Path), verdict, r.Size, r.Pages, r.Duration.Round(time.Millisecond), full)
	printLayoutFiles(w, rep)
	printRemotes(w, remotes)
	printPruned(w, errw, rep)
	warnOffsite(errw, rep)
	return err
}

// printLayoutFiles says which files the run wrote into and removed from the
// database's Litestream replica (--layout litestream).
func printLayoutFiles(w io.Writer, rep *backup.Report) {
	var rr []*chain.ReplicaReport
	if rep.Replica != nil {
		rr = append(rr, rep.Replica)
	}
	if rep.Prune != nil && rep.Prune.Replica != nil {
		rr = append(rr, rep.Prune.Replica)
	}
	for _, r := range rr {
		for _, f := range r.Written {
			fmt.Fprintf(w, "litestream: wrote %s\n", redact.Printable(filepath.Join(r.Dir, f)))
		}
		for _, f := range r.Removed {
			fmt.Fprintf(w, "litestream: removed %s\n", redact.Printable(filepath.Join(r.Dir, f)))
		}
	}
}

// checkName is the check a backup's run would make ("integrity_check",
// "quick_check").
func checkName(r *snapshot.Result) string {
	if r.Check == snapshot.VerifyQuick {
		return "quick_check"
	}
	return "integrity_check"
}

// findSource resolves the one database a command works on: --source,
// its env var and the config file through kong, then DATABASE_URL and
// the app's .env. Several --source values are a usage error here; the
// backup and prune commands take them all (findSources).
func findSource(kctx *kong.Context, g *Globals) (config.Source, error) {
	srcs, err := findSources(kctx, g)
	if err != nil {
		return config.Source{}, err
	}
	if len(srcs) > 1 {
		return config.Source{}, usagef("sqlite-backup --source /srv/app/data/app.db", "%d databases given (--source %s); this command works on one", len(srcs), srcs[0].Path)
	}
	return srcs[0], nil
}

// runFields (sidecars, shrink guard, pruning) are appended to the backup's JSON object.
type runFields struct {
	SHA256   string              `json:"sha256,omitempty"`
	Manifest string              `json:"manifest,omitempty"`
	Rows     int64               `json:"rows"`
	Content  string              `json:"content_sha256,omitempty"`
	Shrink   []manifest.Shrink   `json:"shrink_warnings,omitempty"`
	Compared string              `json:"compared_with,omitempty"`
	Removed  []retention.Removed `json:"removed"`
	NotOurs  []string            `json:"not_written_by_sqlite_backup,omitempty"`
	Skipped  string              `json:"prune_skipped,omitempty"`
	// ContentError says why row counts are missing from the manifest.
	ContentError string `json:"content_error,omitempty"`
	GuardNote    string `json:"shrink_guard_note,omitempty"`
	// Kind is "full" or "increment" with --incremental, Chain the point's
	// place in its chain as its manifest records it, FullReason why a
	// full was taken, CheckNote why a due materialized check did not run.
	Kind       string          `json:"kind,omitempty"`
	Chain      *manifest.Chain `json:"chain,omitempty"`
	FullReason string          `json:"full_reason,omitempty"`
	CheckNote  string          `json:"check_note,omitempty"`
	// Litestream is what the run wrote into the database's Litestream
	// replica (--layout litestream).
	Litestream *chain.ReplicaReport `json:"litestream,omitempty"`
}

func fieldsOf(r *backup.Report) runFields {
	f := runFields{r.SHA256, r.Manifest, r.Rows, r.Content, r.Shrink, r.Compared, []retention.Removed{}, nil, r.Skipped, r.ContentError, r.GuardNote, "", r.Chain, r.FullReason, r.CheckNote, nil}
	if r.Chain != nil {
		f.Kind = r.Chain.Kind
	}
	f.Litestream = r.Replica
	if r.Prune != nil {
		f.Removed = r.Prune.Removed
		f.NotOurs = notWrittenByUs(r.Prune.Removed)
	}
	return f
}

// warnShrink is loud on purpose: a database that lost most of its rows
// is the one case where the newest backup may be the worst one.
func warnShrink(w io.Writer, r *backup.Report) {
	if r.ContentError != "" {
		fmt.Fprintf(w, "sqlite-backup: warning: %s: %s\n", r.Source, r.ContentError)
	}
	if r.GuardNote != "" {
		fmt.Fprintf(w, "sqlite-backup: note: %s: %s\n", r.Source, r.GuardNote)
	}
	if len(r.Shrink) == 0 {
		return
	}
	fmt.Fprintf(w, "sqlite-backup: WARNING: %s shrank sharply since %s:\n", r.Source, r.Compared)
	for _, s := range r.Shrink {
		fmt.Fprintf(w, "  table %s: %d -> %d rows (-%.0f%%)\n", redact.Printable(s.Table), s.Before, s.After, s.Percent)
	}
	fmt.Fprintf(w, "sqlite-backup: WARNING: older backups were NOT pruned; check the application before the next runs (--shrink-guard 0 turns this off)\n")
}

// printPruned adds what pruning did to the backup's line.
func printPruned(w, errw io.Writer, r *backup.Report) {
	switch {
	case r.Skipped == backup.SkipUnverified:
		fmt.Fprintf(errw, "sqlite-backup: note: older backups not pruned: the new backup was not verified\n")
	case r.Skipped == backup.SkipGuardBlind:
		fmt.Fprintf(errw, "sqlite-backup: note: older backups not pruned: the shrink guard could not compare with the previous backup\n")
		fmt.Fprintf(errw, "%shint: %s\n", journal.Prefix(errw, journal.Notice), guardBlindHint)
	case r.Skipped == backup.SkipInterrupted:
		fmt.Fprintf(errw, "sqlite-backup: note: pruning interrupted; the backup above is complete, the next run prunes the rest\n")
	case r.Prune != nil:
		// Cron output stays short: the backups removed, not each sidecar.
		for _, rm := range r.Prune.Removed {
			if !isSidecar(rm.Path) {
				fmt.Fprintf(w, "removed %s\n", redact.Printable(rm.Path))
			}
		}
		warnNotOurs(errw, r.Prune.Policy, r.Prune.Removed)
	}
	if r.RemotesPruneSkipped != "" {
		fmt.Fprintf(errw, "sqlite-backup: note: no remote was pruned: %s; here the rules applied, keeping what a failed remote lacks and would keep; the next run sends it, then prunes the remotes\n", r.RemotesPruneSkipped)
	}
}

func isSidecar(p string) bool {
	return strings.HasSuffix(p, manifest.SHA256Suffix) || strings.HasSuffix(p, manifest.JSONSuffix)
}

// notWrittenByUs are the removed backups that had neither sidecar this
// tool writes (<backup>.sha256, <backup>.json): most likely
// backup_database.py's, which used the same names. The first run with
// the default --keep 10 prunes them; an operator must hear about it.
func notWrittenByUs(removed []retention.Removed) []string {
	gone := map[string]bool{}
	for _, r := range removed {
		gone[r.Path] = true
	}
	var out []string
	for _, r := range removed {
		if !isSidecar(r.Path) && !gone[r.Path+manifest.SHA256Suffix] && !gone[r.Path+manifest.JSONSuffix] {
			out = append(out, r.Path)
		}
	}
	return out
}

// warnNotOurs says on stderr which removed backups this tool did not write.
func warnNotOurs(w io.Writer, policy string, removed []retention.Removed) {
	for _, p := range notWrittenByUs(removed) {
		fmt.Fprintf(w, "sqlite-backup: note: removed %s by the retention rules (%s): it was not written by sqlite-backup (no .sha256 or .json beside it), e.g. by backup_database.py; see docs/MIGRATION.md\n", redact.Printable(p), policy)
	}
}
