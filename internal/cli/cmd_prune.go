package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/config"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/internal/retention"
)

// PruneCmd applies the retention rules without taking a backup.
type PruneCmd struct {
	DryRun      bool          `help:"Only list what would be removed."`
	LockTimeout time.Duration `default:"0s" placeholder:"DUR" help:"How long to wait for another run using the same backup directory (default: fail at once)."`
	Remote      []string      `placeholder:"URL" help:"Prune the backups on this remote instead of --backup-dir (sftp://… or s3://…); repeat for several."`
	RetentionFlags
	RemoteFlags
}

func (c *PruneCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	pol, err := c.RetentionFlags.policy()
	if err != nil {
		return err
	}
	srcs, err := findSources(kctx, g)
	if err != nil {
		return err
	}
	if originOf(kctx, "remote").Origin == config.FromFlag && len(c.Remote) > 0 {
		var paths []string
		for _, s := range srcs {
			paths = append(paths, s.Path)
		}
		return pruneRemotes(ctx, g, c.Remote, c.RemoteFlags, paths, pol, c.DryRun)
	}
	var firstErr error
	var removed []string // by this run, for an interruption's message
	failed := 0
	for _, src := range srcs {
		rep, err := backup.Prune(ctx, backup.PruneOptions{
			Dir:         g.BackupDir,
			Source:      src.Path,
			Policy:      pol,
			DryRun:      c.DryRun,
			LockTimeout: c.LockTimeout,
		})
		if rep != nil {
			// The backups themselves, not their sidecars.
			planned := map[string]bool{}
			for _, d := range rep.Remove {
				planned[d.Backup.Path] = true
			}
			for _, r := range rep.Removed {
				if planned[r.Path] {
					removed = append(removed, r.Path)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return doneWith(err, "already removed", removed)
			}
			failed++
			if g.JSON {
				g.addResult(failedResult(src.Path, "", err))
			}
			if len(srcs) > 1 {
				printError(g.stderr(), err)
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !rep.DryRun {
			warnNotOurs(g.stderr(), rep.Policy, rep.Removed)
		}
		if g.JSON {
			g.addResult(pruneJSON{Source: src.Path, OK: true, PruneReport: rep, NotOurs: notWrittenByUs(rep.Removed)})
		} else {
			printPrune(g.stdout, rep)
		}
	}
	// An interruption may have come after the last removal: the message
	// must still name what went.
	if firstErr != nil && len(srcs) > 1 {
		return doneWith(&severalFailed{what: "databases", failed: failed, total: len(srcs), first: firstErr}, "already removed", removed)
	}
	if firstErr != nil {
		return doneWith(firstErr, "already removed", removed)
	}
	return nil
}

// pruneJSON is one database's result in prune's --json report.
type pruneJSON struct {
	Source string `json:"source"`
	OK     bool   `json:"ok"`
	*backup.PruneReport
	NotOurs []string `json:"not_written_by_sqlite_backup,omitempty"`
}

// chainReason is the reason a decision keeps a backup because a kept
// point's chain needs it (retention.PlanChains), if that is all that
// keeps it.
func chainReason(reasons []string) string {
	for _, r := range reasons {
		if !strings.HasPrefix(r, "needed by ") && !strings.HasPrefix(r, "older than ") {
			return ""
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	return reasons[0]
}

// RetentionFlags are shared by backup and prune.
type RetentionFlags struct {
	Keep        int `default:"10" placeholder:"N" help:"Keep the N newest backups of the database (default ${default}; 0 with no other --keep-* keeps all)."`
	KeepDaily   int `placeholder:"D" help:"Also keep the newest backup of each of the last D days that have one."`
	KeepWeekly  int `placeholder:"W" help:"Also keep the newest backup of each of the last W weeks that have one."`
	KeepMonthly int `placeholder:"M" help:"Also keep the newest backup of each of the last M months that have one."`
}

func (r RetentionFlags) policy() (retention.Policy, error) {
	for _, f := range []struct {
		name string
		n    int
	}{{"keep", r.Keep}, {"keep-daily", r.KeepDaily}, {"keep-weekly", r.KeepWeekly}, {"keep-monthly", r.KeepMonthly}} {
		if f.n < 0 {
			return retention.Policy{}, usagef("sqlite-backup --source app.db --keep 10 --keep-daily 7", "--%s %d: give a count of 0 or more", f.name, f.n)
		}
	}
	return retention.Policy{Last: r.Keep, Daily: r.KeepDaily, Weekly: r.KeepWeekly, Monthly: r.KeepMonthly}, nil
}

func printPrune(w io.Writer, p *backup.PruneReport) {
	verb := "removed"
	if p.DryRun {
		verb = "would remove"
		for _, d := range p.Remove {
			fmt.Fprintf(w, "%s %s\n", verb, redact.Printable(d.Path))
		}
		// What the rules alone would have removed, and what keeps it: a
		// point a kept point of its chain needs.
		for _, d := range p.Kept {
			if why := chainReason(d.Reasons); why != "" {
				fmt.Fprintf(w, "would keep %s (%s)\n", redact.Printable(d.Path), why)
			}
		}
	} else {
		for _, r := range p.Removed {
			fmt.Fprintf(w, "%s %s\n", verb, redact.Printable(r.Path))
		}
	}
	n := len(p.Remove)
	fmt.Fprintf(w, "prune: %s: kept %d, %s %d\n", p.Policy, len(p.Kept), verb, n)
	if len(p.Foreign) > 0 {
		fmt.Fprintf(w, "prune: left alone %d backups of another database with the same file name: %s\n", len(p.Foreign), redact.Printable(strings.Join(p.Foreign, ", ")))
	}
}
