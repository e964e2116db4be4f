package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/internal/sys/lock"
)

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
	// Replica is what went from the database's Litestream replica with
	// the points removed (--layout litestream).
	Replica *chain.ReplicaReport `json:"litestream,omitempty"`
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
	return prune(ctx, dir, src, opts.Policy, opts.DryRun, opts.Loc, "", nil)
}

// NewestWritten is the reason the standalone prune gives for keeping the
// backup with the newest modification time.
const NewestWritten = "newest by modification time"

// prune applies p; newest, if set, is the backup just made, kept
// whatever its name sorts like; hold names other backups kept whatever
// the rules say (path: why).
func prune(ctx context.Context, dir, src string, p retention.Policy, dryRun bool, loc *time.Location, newest string, hold map[string]string) (*PruneReport, error) {
	rep := &PruneReport{Policy: p.String(), DryRun: dryRun, Kept: []retention.Decision{}, Remove: []retention.Decision{}, Removed: []retention.Removed{}}
	all, err := retention.Find(dir, filepath.Base(src), loc)
	if err != nil {
		return rep, err
	}
	var mine []retention.Backup
	protect := map[string]string{}
	for p, why := range hold {
		protect[p] = why
	}
	if newest != "" {
		protect[newest] = "just made"
	}
	// What each manifest says of its chain: a kept point keeps every
	// point it needs (retention.PlanChains).
	links := map[string]retention.Link{}
	flagged := map[string]bool{}
	for _, b := range all {
		m, err := manifest.Read(b.Path)
		if err == nil && m.Source != "" && m.Source != src {
			rep.Foreign = append(rep.Foreign, b.Path)
			continue
		}
		mine = append(mine, b)
		if err != nil {
			continue
		}
		flagged[b.Path] = m.Flagged()
		l := retention.Link{}
		if m.Chain != nil {
			l = retention.Link{Kind: m.Chain.Kind, Parent: m.Chain.Parent}
		}
		links[b.Name] = l
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
		if !flagged[b.Path] {
			continue
		}
		protect[b.Path] = "shrink warning"
		if i+1 < len(mine) {
			protect[mine[i+1].Path] = "last before the shrink warning of " + b.Name
		}
	}
	for _, d := range retention.PlanChains(mine, p, protect, links) {
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
		// A pruned point's Litestream file goes with it (litestream.go).
		rr, err := chain.SyncReplica(ctx, dir, filepath.Base(src), loc, true)
		if len(rr.Removed) > 0 {
			rep.Replica = rr
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}
