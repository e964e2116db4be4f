package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/lifecycle"
)

// PruneCmd applies the retention rules without taking a backup.
type PruneCmd struct {
	DryRun      bool          `help:"Only list what would be removed."`
	LockTimeout time.Duration `default:"0s" placeholder:"DUR" help:"How long to wait for another run using the same backup directory (default: fail at once)."`
	RetentionFlags
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
	var reps []*lifecycle.PruneReport
	var firstErr error
	var removed []string // by this run, for an interruption's message
	failed := 0
	for _, src := range srcs {
		rep, err := lifecycle.Prune(ctx, lifecycle.PruneOptions{
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
			if len(srcs) > 1 {
				printError(g.stderr(), err)
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		reps = append(reps, rep)
		if !g.JSON {
			printPrune(g.stdout, rep)
		}
	}
	if g.JSON {
		if err := json.NewEncoder(g.stdout).Encode(reps); err != nil {
			return err
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
