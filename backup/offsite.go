package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/sys/lock"
	"sqlite-backup/remote"
)

// Remotes are the off-site copies of a run. Before the snapshot every
// remote is checked (preflight): one that cannot work (host key,
// credentials, bucket or directory, another owner's backups there)
// fails the run in seconds, before a backup is made. After the local
// backup is published and verified, each remote gets every verified
// local backup of the database it lacks (remote.Sync); only when every
// remote succeeded is any remote pruned. Locally, pruning never removes
// a backup some remote still lacks: during an outage the backups the
// remotes hold are pruned and the rest waits here.
type Remotes struct {
	URLs    []string
	Options remote.Options
	// Attempts and Backoff bound the retries of a transient failure.
	Attempts int
	Backoff  time.Duration
	// Progress, if set, starts following the uploads to one remote: fn
	// is told the bytes sent, phase how an upload is checked once they
	// went out (remote.PhaseServerHash, PhaseReadBack); done ends it.
	Progress func(url string) (fn func(name string, done, total int64), phase func(name, phase string), done func())
}

// SkipRemote is Report.RemotesPruneSkipped when a remote failed: no
// remote was pruned.
const SkipRemote = "a remote failed"

// NotSentUnverified is Report.RemoteNote for a backup the remotes did
// not get because it was not verified.
const NotSentUnverified = "not sent to the remotes: only verified backups in --backup-dir go off-site"

// Damaged is a local backup whose bytes no longer match its .sha256: it
// is not sent anywhere.
type Damaged struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// preflight checks every remote before the snapshot: its listing, whose
// backups are there, and where the backend can (remote.Checker) that it
// takes a file. A permanent failure (usage, host key, credentials, TLS,
// missing bucket or directory, not writable, another owner's backups)
// fails the run; a transient one
// (unreachable, a dropped connection) does not: the backup is still
// taken, and the upload retries and reports.
func preflight(ctx context.Context, opts Options) error {
	o, err := ownerOf(opts, false)
	if err != nil {
		return err
	}
	ro := opts.Remotes
	var errs []error
	for _, url := range ro.URLs {
		r, err := remote.Open(ctx, url, ro.Options)
		if err == nil {
			err = remote.Check(ctx, r, remote.Redact(url), o, opts.Loc)
			// A backend that can also prove the place writable does.
			if c, ok := r.(remote.Checker); ok && err == nil {
				err = c.Check(ctx)
			}
			r.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !transient(err) {
			errs = append(errs, withHint(err, url, ro.Options))
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

func transient(err error) bool {
	var re *remote.Error
	return errors.As(err, &re) && re.Transient
}

// ownerOf is the run's owner on the remotes; with create the backup
// directory gets an ID if it has none.
func ownerOf(opts Options, create bool) (remote.Owner, error) {
	dir, err := filepath.Abs(opts.Backup.Dir)
	if err != nil {
		return remote.Owner{}, err
	}
	src, err := filepath.Abs(opts.Backup.Source)
	if err != nil {
		return remote.Owner{}, err
	}
	o := remote.Owner{Host: hostName(), Dir: dir, Source: src}
	if create {
		o.ID, err = ownerID(dir)
	} else {
		o.ID, err = readOwnerID(dir)
	}
	return o, err
}

// sendOffsite runs after a published backup when opts.Remotes has URLs:
// the remotes, then pruning (the remotes only if every one succeeded;
// locally by the rules, keeping what a failed remote lacks and would
// keep). It returns the remotes' error joined with a local one; rep says
// what happened.
func sendOffsite(ctx context.Context, opts Options, rep *Report) error {
	res := rep.Result
	if !verified(res) || opts.Backup.Path != "" {
		rep.RemoteNote = NotSentUnverified
		return nil
	}
	dir := filepath.Dir(res.Path)
	ro := opts.Remotes
	o, err := ownerOf(opts, false)
	if err != nil {
		return err
	}
	o.Dir, o.Source = dir, res.Source
	prune := rep.Skipped == "" && !opts.Policy.KeepsAll()
	srs := make([]*remote.SyncReport, len(ro.URLs))
	for i, url := range ro.URLs {
		srs[i] = &remote.SyncReport{Remote: remote.Redact(url), Uploaded: []string{}, Removed: []string{}}
	}
	rep.Remotes = srs
	encrypted := len(opts.Backup.Recipients) > 0
	out, stay, err := remote.Outgoing(dir, o, encrypted, opts.Loc)
	if err != nil {
		return err
	}
	var errs []error // the remotes'
	var localErr error
	failed := func(i int, err error) {
		err = withHint(err, ro.URLs[i], ro.Options)
		srs[i].Error, srs[i].Hint = trimURL(err, srs[i].Remote), hint.Of(err)
		errs = append(errs, err)
	}
	state := loadState(dir) // read again under the lock, if it is ours
	lk, lerr := lock.AcquireOffsite(ctx, dir, opts.Backup.LockTimeout)
	if lerr != nil {
		// Another run is sending this directory's backups: this one
		// sends nothing (its cleanup could take that run's uploads for
		// dead ones), and the next run sends what it missed.
		for i := range srs {
			srs[i].Error, srs[i].Hint = lerr.Error(), hint.Of(lerr)
		}
		errs = append(errs, lerr)
	} else {
		state = loadState(dir) // as the last run that held the lock left it
		checked := map[string]error{}
		for p, err := range rep.prechecked {
			checked[p] = err
			if err != nil {
				rep.Damaged = append(rep.Damaged, Damaged{Path: p, Error: err.Error()})
			}
		}
		check := func(b remote.Local) error {
			if b.Path == res.Path {
				return nil // hashed as it was written, in this run
			}
			if err, ok := checked[b.Path]; ok {
				return err
			}
			sum, err := manifest.FileSHA256(b.Path)
			if err == nil && sum != b.SHA256 {
				err = fmt.Errorf("its sha256 is now %s, its .sha256 says %s", sum, b.SHA256)
			}
			if err != nil {
				err = fmt.Errorf("damaged here: %w", err)
				rep.Damaged = append(rep.Damaged, Damaged{Path: b.Path, Error: err.Error()})
			}
			checked[b.Path] = err
			return err
		}
		rs := make([]remote.Remote, len(ro.URLs))
		defer func() {
			for _, r := range rs {
				if r != nil {
					r.Close()
				}
			}
		}()
		for i, url := range ro.URLs {
			if err := ctx.Err(); err != nil {
				lk.Release()
				return err
			}
			r, err := remote.Open(ctx, url, ro.Options)
			if err == nil {
				rs[i] = r
				var sr *remote.SyncReport
				sr, err = syncOne(ctx, opts, r, url, out, o, check)
				if sr != nil {
					sr.Remote, srs[i] = srs[i].Remote, sr
				}
				if err == nil && opts.litestream() {
					// The Litestream replica after the points
					// (litestream_offsite.go).
					srs[i].Litestream, err = sendReplica(ctx, opts, r, url, dir, filepath.Base(res.Source), replicaReplaced(rep))
				}
			}
			srs[i].Skipped = append(append([]string{}, stay...), srs[i].Skipped...)
			if err == nil {
				err = heldBack(srs[i], res.Path)
			}
			if err != nil {
				failed(i, err)
			}
		}
		if len(errs) == 0 && prune {
			for i := range ro.URLs {
				if err := pruneOne(ctx, opts, rs[i], o, res.Path, srs[i]); err != nil {
					failed(i, err)
				}
			}
		}
		for i, sr := range srs {
			if sr.Held != nil {
				state.set(srs[i].Remote, o.Source, sr.Held)
			}
		}
		localErr = state.save(dir)
		lk.Release()
	}
	if prune && len(errs) > 0 && !anyPruned(srs) {
		rep.RemotesPruneSkipped = SkipRemote
	}

	// What a failed remote lacks stays here: by its fresh listing, or
	// for one that could not be listed, by what it held when last
	// listed (a remote that succeeded has every backup sent).
	damaged := map[string]bool{}
	for _, d := range rep.Damaged {
		damaged[d.Path] = true
	}
	hold := map[string]string{}
	for _, sr := range srs {
		if sr.Error == "" {
			continue
		}
		held := sr.Held
		if held == nil {
			held = state.get(sr.Remote, o.Source)
		}
		for _, b := range pending(out, held, damaged, opts.Policy, res.Path, opts.Loc) {
			sr.Pending = append(sr.Pending, b.Name)
			if _, ok := hold[b.Path]; !ok {
				hold[b.Path] = holdReason + sr.Remote
			}
		}
	}
	if prune {
		rep.Prune, err = pruneLocal(ctx, opts, dir, res.Source, res.Path, hold)
		if err != nil && ctx.Err() != nil {
			rep.Skipped, err = SkipInterrupted, nil
		}
		localErr = errors.Join(localErr, err)
		if rep.Prune != nil {
			for _, d := range rep.Prune.Kept {
				if heldOnly(d.Reasons) {
					rep.KeptForRemotes = append(rep.KeptForRemotes, d.Path)
				}
			}
		}
	}
	rep.LocalErr = localErr
	switch len(errs) {
	case 0:
		return localErr
	case 1:
		rep.RemoteErr = errs[0]
	default:
		rep.RemoteErr = hint.Wrap(&RemotesFailed{Failed: len(errs), Total: len(ro.URLs), First: errs[0]},
			"each remote's error is above; the backups they lack stay here, and the next run sends them")
	}
	return errors.Join(rep.RemoteErr, localErr)
}

// pending are the backups of out that a remote holding held (name:
// sha256) lacks and would keep, by the same rules as its pruning (a
// kept point keeps its chain): one its retention would remove at once
// (it pruned it before) is not waited for, nor one that can never go
// (damaged here, or an increment whose chain has such a point).
func pending(out []remote.Local, held map[string]string, damaged map[string]bool, p retention.Policy, newest string, loc *time.Location) []remote.Local {
	byName := map[string]remote.Local{}
	for _, b := range out {
		byName[b.Name] = b
	}
	can := map[string]bool{}
	var canGo func(name string) bool
	canGo = func(name string) bool {
		if v, seen := can[name]; seen {
			return v
		}
		can[name] = false // a chain that loops never goes
		b, ok := byName[name]
		v := false
		switch {
		case ok:
			v = !damaged[b.Path] && (b.Parent == "" || canGo(b.Parent))
		default:
			_, v = held[name] // there already, with the remote's chain
		}
		can[name] = v
		return v
	}
	var lacking []remote.Local
	var all []retention.Backup
	links := map[string]retention.Link{}
	for _, b := range out {
		if held[b.Name] != b.SHA256 && canGo(b.Name) {
			lacking = append(lacking, b)
			all = append(all, retention.Backup{Path: b.Name, Name: b.Name, Time: b.Time, Seq: b.Seq})
			links[b.Name] = link(b)
		}
	}
	if len(lacking) == 0 || p.KeepsAll() {
		return lacking
	}
	for name := range held {
		if _, t, seq, _, ok := retention.Parse(name, loc); ok {
			all = append(all, retention.Backup{Path: name, Name: name, Time: t, Seq: seq})
			links[name] = retention.Link{}
			if b, ok := byName[name]; ok {
				links[name] = link(b)
			}
		}
	}
	keep := map[string]bool{}
	for _, d := range retention.PlanChains(all, p, map[string]string{filepath.Base(newest): "just made"}, links) {
		keep[d.Name] = d.Keep
	}
	var out2 []remote.Local
	for _, b := range lacking {
		if keep[b.Name] {
			out2 = append(out2, b)
		}
	}
	return out2
}

// link is a local backup's place in a chain, for retention.
func link(b remote.Local) retention.Link {
	if b.Parent != "" {
		return retention.Link{Kind: retention.KindIncrement, Parent: b.Parent}
	}
	return retention.Link{}
}

// heldBack fails a remote that did not get the backup just made
// because its chain could not go: that is no "ok".
func heldBack(sr *remote.SyncReport, newest string) error {
	name := filepath.Base(newest)
	if !slices.Contains(sr.HeldBack, name) {
		return nil
	}
	why := ""
	for _, s := range sr.Skipped {
		if w, ok := strings.CutPrefix(s, name+": "); ok {
			why = w
		}
	}
	return hint.Wrap(fmt.Errorf("%s was not sent: %s", name, why),
		"the next run starts a new chain with a full backup, which goes; check the backups here: sqlite-backup list --verify --backup-dir %s", hint.Quote(filepath.Dir(newest)))
}

func anyPruned(srs []*remote.SyncReport) bool {
	for _, sr := range srs {
		if sr.Pruned {
			return true
		}
	}
	return false
}

// holdReason starts the reason a local backup outlives the retention
// rules: a remote lacks it.
const holdReason = "not yet on "

func heldOnly(reasons []string) bool {
	for _, r := range reasons {
		if !strings.HasPrefix(r, holdReason) {
			return false
		}
	}
	return len(reasons) > 0
}

// syncOne sends to one remote.
func syncOne(ctx context.Context, opts Options, r remote.Remote, url string, out []remote.Local, o remote.Owner, check func(remote.Local) error) (*remote.SyncReport, error) {
	ro := opts.Remotes
	var pfn func(name string, done, total int64)
	var phase func(name, phase string)
	clear := func() {}
	if ro.Progress != nil {
		pfn, phase, clear = ro.Progress(url)
	}
	defer clear()
	return remote.Sync(ctx, r, remote.Redact(url), out, remote.SyncOptions{
		Dir:      o.Dir,
		Owner:    o,
		Check:    check,
		Attempts: ro.Attempts,
		Backoff:  ro.Backoff,
		Progress: pfn,
		Phase:    phase,
		Loc:      opts.Loc,
	})
}

// pruneOne applies the policy on one remote that has every copy.
func pruneOne(ctx context.Context, opts Options, r remote.Remote, o remote.Owner, newest string, sr *remote.SyncReport) error {
	ro := opts.Remotes
	t0 := time.Now()
	pr, err := remote.Prune(ctx, r, remote.PruneOptions{Owner: o, Newest: newest, Policy: opts.Policy, Loc: opts.Loc, Attempts: ro.Attempts, Backoff: ro.Backoff})
	sr.DurationMS += time.Since(t0).Milliseconds()
	if pr != nil {
		sr.Removed, sr.Kept, sr.Pruned = pr.Removed, len(pr.Kept), err == nil
		for _, n := range pr.Removed {
			delete(sr.Held, n)
		}
	}
	return err
}

// pruneLocal prunes the backup directory under its lock; hold names
// backups kept whatever the rules say, with why.
func pruneLocal(ctx context.Context, opts Options, dir, src, newest string, hold map[string]string) (*PruneReport, error) {
	lk, err := lock.Acquire(ctx, dir, opts.Backup.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer lk.Release()
	return prune(ctx, dir, src, opts.Policy, false, opts.Loc, newest, hold)
}

// withHint gives a remote's error the way to test the connection when
// it has no hint of its own.
func withHint(err error, url string, o remote.Options) error {
	if hint.Of(err) != "" {
		return err
	}
	cmd := "sqlite-backup list --remote " + hint.Quote(remote.Redact(url))
	if strings.HasPrefix(url, "sftp://") {
		if o.SSHKey != "" {
			cmd += " --ssh-key " + hint.Quote(o.SSHKey)
		}
		if o.KnownHosts != "" {
			cmd += " --known-hosts " + hint.Quote(o.KnownHosts)
		}
	}
	if strings.HasPrefix(url, "s3://") && o.S3Endpoint != "" {
		cmd += " --s3-endpoint " + hint.Quote(remote.Redact(o.S3Endpoint))
	}
	return hint.Wrap(err, "the backups this remote lacks stay here and the next run sends them; test the connection: %s", cmd)
}

// trimURL is a remote's error without its "remote URL: " prefix, where
// the report names the remote already.
func trimURL(err error, url string) string {
	return strings.TrimPrefix(err.Error(), "remote "+url+": ")
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

// StateFile records, in a backup directory that has remotes, which of
// its backups each remote held when it was last listed: during an
// outage, local pruning removes only what every remote holds.
const StateFile = ".sqlite-backup-offsite.json"

type offsiteState struct {
	Version int `json:"version"`
	// Remotes: URL (no secrets), then database path.
	Remotes map[string]map[string]*heldBackups `json:"remotes"`
}

type heldBackups struct {
	Listed  time.Time         `json:"listed"`
	Backups map[string]string `json:"backups"` // name: sha256
}

// loadState reads the state; a missing or unreadable one knows nothing,
// which keeps more here, never less.
func loadState(dir string) *offsiteState {
	s := &offsiteState{Version: 1, Remotes: map[string]map[string]*heldBackups{}}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s
	}
	var got offsiteState
	if json.Unmarshal(b, &got) != nil || got.Version != 1 || got.Remotes == nil {
		return s
	}
	return &got
}

func (s *offsiteState) get(url, src string) map[string]string {
	if h := s.Remotes[url][src]; h != nil {
		return h.Backups
	}
	return nil
}

func (s *offsiteState) set(url, src string, held map[string]string) {
	if s.Remotes[url] == nil {
		s.Remotes[url] = map[string]*heldBackups{}
	}
	s.Remotes[url][src] = &heldBackups{Listed: time.Now().UTC(), Backups: held}
}

func (s *offsiteState) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return manifest.WriteAtomic(filepath.Join(dir, StateFile), append(b, '\n'))
}
