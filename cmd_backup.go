package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/compress"
	"sqlite-backup/config"
	"sqlite-backup/lifecycle"
	"sqlite-backup/metrics"
)

// BackupCmd takes one verified backup.
type BackupCmd struct {
	Backup      string        `placeholder:"FILE" help:"Write the backup to FILE instead of a timestamped name in --backup-dir. FILE must not exist."`
	Method      string        `enum:"backup,vacuum" default:"backup" help:"backup: SQLite's online backup API in one read transaction; vacuum: VACUUM INTO (compacted copy, slower). One of: ${enum}."`
	NoVerify    bool          `xor:"check" help:"Skip the integrity check of the new backup (not recommended)."`
	Quick       bool          `xor:"check" help:"Check the new backup with quick_check instead of the full integrity_check."`
	LockTimeout time.Duration `default:"0s" placeholder:"DUR" help:"How long to wait for another run using the same backup directory (default: fail at once)."`
	Verify      []string      `placeholder:"FILE" sep:"none" env:"-" help:"Verify FILE instead of taking a backup (same as the verify command)."`
	Compress    string        `enum:"none,zstd,gzip" default:"none" help:"Compress the verified backup: zstd (.zst), gzip (.gz) or none (default ${default})."`
	Deep        bool          `help:"Also record a logical hash of every row in the manifest, for verify --deep."`
	ShrinkGuard int           `default:"50" placeholder:"PCT" help:"Warn and skip pruning if any table lost more than PCT% of its rows since the previous verified backup (0: off; default ${default})."`
	MetricsFile string        `placeholder:"PATH" help:"Record the outcome in PATH (*.prom) for the node_exporter textfile collector, replaced atomically."`
	RetentionFlags
}

func (c *BackupCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	if len(c.Verify) > 0 {
		if originOf(kctx, "source").Origin == config.FromFlag || c.Backup != "" {
			return usagef("sqlite-backup --verify /backup/app.db.20250101_120000", "--verify checks existing files; it cannot be combined with --source or --backup")
		}
		v := VerifyCmd{Files: c.Verify, Quick: c.Quick}
		return v.Run(ctx, g)
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
	var failed int
	var firstErr error
	var done []string // published so far, for an interruption's message
	for _, src := range srcs {
		bo := backup.Options{
			Source:      src.Path,
			Dir:         g.BackupDir,
			Path:        c.Backup,
			Method:      backup.Method(c.Method),
			Verify:      backup.VerifyFull,
			BusyTimeout: g.BusyTimeout,
			LockTimeout: c.LockTimeout,
			Compress:    compress.Kind(c.Compress),
		}
		switch {
		case c.NoVerify:
			bo.Verify = backup.VerifyNone
		case c.Quick:
			bo.Verify = backup.VerifyQuick
		}
		var clearProgress func()
		bo.Progress, bo.VerifyProgress, clearProgress = ttyProgress(g.stderr(), src.Path)
		rep, err := lifecycle.Run(ctx, lifecycle.Options{
			Backup:      bo,
			Policy:      pol,
			Deep:        c.Deep,
			ShrinkGuard: float64(c.ShrinkGuard),
			ToolVersion: buildInfo().Version,
		})
		clearProgress()
		var published *backup.Result // set once the backup is in place
		if rep != nil {
			published = rep.Result
		}
		if published != nil {
			done = append(done, published.Path)
		}
		err = errors.Join(err, mf.RecordBackup(src.Path, published, err))
		if rep != nil {
			if perr := printBackup(g.stdout, g.stderr(), rep, g.JSON); err == nil {
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

func printBackup(w, errw io.Writer, rep *lifecycle.Report, asJSON bool) error {
	r := rep.Result
	warnShrink(errw, rep)
	if asJSON {
		return json.NewEncoder(w).Encode(struct {
			*backup.Result
			DurationMS int64 `json:"duration_ms"`
			lifecycleFields
		}{r, r.Duration.Milliseconds(), fieldsOf(rep)})
	}
	verdict := string(r.Check) + " ok"
	if r.Verify == "skipped" {
		verdict = "NOT VERIFIED (--no-verify)"
	}
	_, err := fmt.Fprintf(w, "%s: %s, %d bytes, %d pages, %s\n", r.Path, verdict, r.Size, r.Pages, r.Duration.Round(time.Millisecond))
	printLifecycle(w, errw, rep)
	return err
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
