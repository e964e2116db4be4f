package backup

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"sqlite-backup/remote"
)

// Remotes are the off-site copies of a run: after the local backup is
// published and verified, each remote in turn gets every verified local
// backup of the database it lacks (remote.Sync) and is pruned by the
// same policy; the local backups are pruned only when every remote
// succeeded, so a remote's failure never costs a copy anywhere.
type Remotes struct {
	URLs    []string
	Options remote.Options
	// Attempts and Backoff bound the retries of a transient failure.
	Attempts int
	Backoff  time.Duration
	// Progress, if set, starts following the uploads to one remote; the
	// returned done ends it.
	Progress func(url string) (fn func(name string, done, total int64), done func())
}

// SkipRemote is Report.Skipped when a remote failed: nothing was pruned,
// here or on any remote.
const SkipRemote = "a remote failed"

// NotSentUnverified is Report.RemoteNote for a backup the remotes did
// not get because it was not verified.
const NotSentUnverified = "not sent to the remotes: only verified backups in --backup-dir go off-site"

// sendOffsite runs after a published backup when opts.Remotes has URLs:
// the remotes, then (if every one succeeded and pruning may run) the
// local prune. It returns the remotes' error; rep says what happened.
func sendOffsite(ctx context.Context, opts Options, rep *Report) error {
	res := rep.Result
	if !verified(res) || opts.Backup.Path != "" {
		rep.RemoteNote = NotSentUnverified
		return nil
	}
	prune := rep.Skipped == "" && !opts.Policy.KeepsAll()
	srs, err := syncRemotes(ctx, opts, rep, prune)
	rep.Remotes = srs
	switch {
	case err != nil:
		if prune {
			rep.Skipped = SkipRemote
		}
		return err
	case prune:
		rep.Prune, err = Prune(ctx, PruneOptions{Dir: opts.Backup.Dir, Source: opts.Backup.Source, Policy: opts.Policy, LockTimeout: opts.Backup.LockTimeout, Loc: opts.Loc})
		if err != nil && ctx.Err() != nil {
			rep.Skipped, err = SkipInterrupted, nil
		}
		return err
	}
	return nil
}

// syncRemotes sends the backups of one database to every remote, and
// prunes each remote where every upload succeeded. A remote's failure
// is reported and the others still get their copy.
func syncRemotes(ctx context.Context, opts Options, rep *Report, prune bool) ([]*remote.SyncReport, error) {
	ro := opts.Remotes
	var out []*remote.SyncReport
	var errs []error
	for _, url := range ro.URLs {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		sr := &remote.SyncReport{Remote: remote.Redact(url), Uploaded: []string{}, Removed: []string{}}
		r, err := remote.Open(ctx, url, ro.Options)
		if err == nil {
			var pfn func(name string, done, total int64)
			clear := func() {}
			if ro.Progress != nil {
				pfn, clear = ro.Progress(url)
			}
			var got *remote.SyncReport
			got, err = remote.Sync(ctx, r, remote.Redact(url), remote.SyncOptions{
				Dir:      filepath.Dir(rep.Path),
				Source:   rep.Source,
				Newest:   rep.Path,
				Policy:   opts.Policy,
				Prune:    prune,
				Attempts: ro.Attempts,
				Backoff:  ro.Backoff,
				Progress: pfn,
			})
			clear()
			r.Close()
			if got != nil {
				sr = got
			}
		}
		if err != nil {
			sr.Error = err.Error()
			errs = append(errs, err)
		}
		out = append(out, sr)
	}
	switch len(errs) {
	case 0:
		return out, nil
	case 1:
		return out, errs[0]
	}
	return out, &RemotesFailed{Failed: len(errs), Total: len(ro.URLs), First: errs[0]}
}

// RemotesFailed is the error of a run where several remotes failed; it
// unwraps to the first failure.
type RemotesFailed struct {
	Failed, Total int
	First         error
}

func (e *RemotesFailed) Error() string {
	return fmt.Sprintf("%d of %d remotes failed", e.Failed, e.Total)
}
func (e *RemotesFailed) Unwrap() error { return e.First }
