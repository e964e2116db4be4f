package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/config"
)

// BackupCmd takes one verified backup.
type BackupCmd struct {
	Backup      string        `placeholder:"FILE" help:"Write the backup to FILE instead of a timestamped name in --backup-dir. FILE must not exist."`
	Method      string        `enum:"backup,vacuum" default:"backup" help:"backup: SQLite's online backup API in one read transaction; vacuum: VACUUM INTO (compacted copy, slower). One of: ${enum}."`
	NoVerify    bool          `xor:"check" help:"Skip the integrity check of the new backup (not recommended)."`
	Quick       bool          `xor:"check" help:"Check the new backup with quick_check instead of the full integrity_check."`
	LockTimeout time.Duration `default:"0s" placeholder:"DUR" help:"How long to wait for another run using the same backup directory (default: fail at once)."`
	Verify      []string      `placeholder:"FILE" sep:"none" env:"-" help:"Verify FILE instead of taking a backup (same as the verify command)."`
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
	src, err := findSource(kctx, g)
	if err != nil {
		return err
	}
	opts := backup.Options{
		Source:      src.Path,
		Dir:         g.BackupDir,
		Path:        c.Backup,
		Method:      backup.Method(c.Method),
		Verify:      backup.VerifyFull,
		BusyTimeout: g.BusyTimeout,
		LockTimeout: c.LockTimeout,
	}
	switch {
	case c.NoVerify:
		opts.Verify = backup.VerifyNone
	case c.Quick:
		opts.Verify = backup.VerifyQuick
	}
	var clearProgress func()
	opts.Progress, opts.VerifyProgress, clearProgress = ttyProgress(g.stderr, src.Path)
	res, err := backup.Run(ctx, opts)
	clearProgress()
	if err != nil {
		return err
	}
	return printBackup(g.stdout, res, g.JSON)
}

func printBackup(w io.Writer, r *backup.Result, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(struct {
			*backup.Result
			DurationMS int64 `json:"duration_ms"`
		}{r, r.Duration.Milliseconds()})
	}
	verdict := string(r.Check) + " ok"
	if r.Verify == "skipped" {
		verdict = "NOT VERIFIED (--no-verify)"
	}
	_, err := fmt.Fprintf(w, "%s: %s, %d bytes, %d pages, %s\n", r.Path, verdict, r.Size, r.Pages, r.Duration.Round(time.Millisecond))
	return err
}

// findSource resolves the database to back up: --source, its env var and
// the config file through kong, then DATABASE_URL and the app's .env.
func findSource(kctx *kong.Context, g *Globals) (config.Source, error) {
	o := originOf(kctx, "source")
	l := config.Lookup{
		Source:       g.Source,
		SourceOrigin: o.Origin,
		SourceDetail: o.Detail,
		ConfigErr:    g.configErr,
		AppDir:       g.AppDir,
		Getenv:       os.Getenv,
	}
	if g.configFile != nil {
		l.ConfigFile = g.configFile.Path
	}
	return config.FindSource(l)
}
