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
			for _, r := range rep.Removed {
				removed = append(removed, r.Path)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return doneWith(err, "removed before it", removed)
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
	if firstErr != nil && len(srcs) > 1 {
		return &severalFailed{what: "databases", failed: failed, total: len(srcs), first: firstErr}
	}
	return firstErr
}
