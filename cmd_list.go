package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/config"
)

// ListCmd shows the backups in the backup directory with what their
// sidecars say; with --verify it checks each one as verify does.
type ListCmd struct {
	Verify  bool     `help:"Also check each backup: sha256, decompression and integrity_check (reads every file)."`
	Quick   bool     `help:"Check each backup with quick_check instead of integrity_check (implies --verify)."`
	Deep    bool     `help:"Also recompute the rows and content hash each manifest recorded (implies --verify)."`
	TempDir string   `placeholder:"DIR" help:"Where compressed backups are decompressed to be checked (default: the system temp dir)."`
	Remote  []string `placeholder:"URL" help:"List the backups on this remote instead (sftp://… or s3://…); repeat for several."`
	RemoteFlags
}

func (c *ListCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	// Only a database named explicitly narrows the list; otherwise every
	// backup in the directory is shown.
	c.Verify = c.Verify || c.Quick || c.Deep
	var dbs []string
	if o := originOf(kctx, "source"); o.Origin == config.FromFlag || o.Origin == config.FromEnv || o.Origin == config.FromFile {
		srcs, err := findSources(kctx, g)
		if err != nil {
			return err
		}
		for _, s := range srcs {
			dbs = append(dbs, filepath.Base(s.Path))
		}
	}
	if originOf(kctx, "remote").Origin == config.FromFlag && len(c.Remote) > 0 {
		if c.Verify {
			return usagef("sqlite-backup verify s3://bucket/prefix/app.db.20250101_120000", "list --remote does not check files; verify URL/NAME downloads one and checks it")
		}
		return listRemotes(ctx, g, c.Remote, c.RemoteFlags, dbs)
	}
	es, err := backup.List(ctx, backup.ListOptions{Dir: g.BackupDir, DBs: dbs, Verify: c.Verify, Quick: c.Quick, Deep: c.Deep, TempDir: c.TempDir})
	if err != nil {
		return err
	}
	if g.JSON {
		if err := json.NewEncoder(g.stdout).Encode(es); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tBACKUP\tSIZE\tCOMPRESSION\tVERIFIED\tSHA256\tROWS\tNOTE")
		for _, e := range es {
			verified := "-"
			if e.VerifiedAt != nil {
				verified = e.VerifiedAt.Local().Format("2006-01-02 15:04:05")
			}
			rows := "-"
			if e.Rows != nil {
				rows = strconv.FormatInt(*e.Rows, 10)
			}
			note := ""
			if e.Shrink {
				note = "SHRINK WARNING "
			}
			if e.Manifest != "ok" {
				note += "manifest " + e.Manifest + " "
			}
			if e.Verify != nil {
				if e.Verify.OK {
					note += "check ok"
				} else {
					note += "check FAILED: " + e.Verify.Summary()
				}
			}
			if e.Error != "" {
				note += "ERROR: " + e.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.DateTime), e.Name, e.Size, e.Compression, verified, e.SHA256, rows, note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if c.Verify {
		failed, errs := 0, 0
		var firstErr error
		for _, e := range es {
			switch {
			case e.Error != "":
				errs++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s", e.Error)
				}
			case e.Verify != nil && !e.Verify.OK:
				failed++
			}
		}
		if failed > 0 {
			return &verifyFailed{failed: failed, total: len(es)}
		}
		return firstErr
	}
	return nil
}
