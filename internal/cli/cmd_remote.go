package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"sqlite-backup/backup"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/progress"
	"sqlite-backup/internal/retention"
	"sqlite-backup/remote"
	_ "sqlite-backup/remote/s3"   // s3://bucket[/prefix]
	_ "sqlite-backup/remote/sftp" // sftp://user@host[:port]/abs/dir
)

// skipRemote is why pruning was skipped when a remote failed.
const skipRemote = "a remote failed"

// RemoteFlags are how the commands reach a remote; credentials for S3
// come from the AWS variables, never from flags.
type RemoteFlags struct {
	SSHKey     string `placeholder:"FILE" help:"SSH private key for sftp:// remotes (default: ssh-agent via SSH_AUTH_SOCK, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa)."`
	KnownHosts string `placeholder:"FILE" help:"known_hosts file that must hold the SFTP server's host key (default ~/.ssh/known_hosts)."`
	S3Endpoint string `name:"s3-endpoint" env:"SQLITE_BACKUP_S3_ENDPOINT" placeholder:"URL" help:"S3-compatible endpoint, e.g. https://s3.example.com (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS)."`
}

func (f RemoteFlags) options() remote.Options {
	return remote.Options{SSHKey: f.SSHKey, KnownHosts: f.KnownHosts, S3Endpoint: f.S3Endpoint}
}

// remoteRetry bounds the retries of a transient remote failure: four
// tries, 1 s, 2 s and 4 s apart (SQLITE_BACKUP_REMOTE_BACKOFF shortens
// the wait in tests).
func remoteRetry() (int, time.Duration) {
	base := time.Second
	if d, err := time.ParseDuration(os.Getenv("SQLITE_BACKUP_REMOTE_BACKOFF")); err == nil && d > 0 {
		base = d
	}
	return 4, base
}

// isRemoteURL says whether a verify or restore argument names a remote
// backup rather than a local file.
func isRemoteURL(s string) bool {
	return strings.HasPrefix(s, "sftp://") || strings.HasPrefix(s, "s3://")
}

func openRemote(ctx context.Context, url string, f RemoteFlags) (remote.Remote, error) {
	r, err := remote.Open(ctx, url, f.options())
	if err != nil {
		var re *remote.Error
		if errors.As(err, &re) && re.Kind == remote.KindUsage {
			return nil, &usageError{hint.Wrap(err, "sqlite-backup --remote sftp://backup@host.example/srv/backups --remote s3://bucket/prefix")}
		}
	}
	return r, err
}

// uploadProgress keeps one status line per upload on a terminal.
func uploadProgress(stderr io.Writer, url string) (func(name string, done, total int64), func()) {
	f, ok := stderr.(*os.File)
	if !ok || !progress.IsTerminal(f) {
		return nil, func() {}
	}
	var line *progress.Line
	var cur string
	fn := func(name string, done, total int64) {
		if name != cur {
			if line != nil {
				line.Done()
			}
			line, cur = progress.New(stderr, "upload "+remote.Redact(url), 0), name
		}
		pct := int64(100)
		if total > 0 {
			pct = done * 100 / total
		}
		line.Note(fmt.Sprintf("%s %d/%d MB %d%%", name, done>>20, total>>20, pct))
	}
	return fn, func() {
		if line != nil {
			line.Done()
		}
	}
}

// sendRemotes sends the backups of one database to every remote, then
// prunes each remote where every upload succeeded. A remote's failure
// is reported and the others still get their copy; it never touches
// the local backup.
func sendRemotes(ctx context.Context, g *Globals, urls []string, flags RemoteFlags, rep *backup.Report, pol retention.Policy, prune bool) ([]*remote.SyncReport, error) {
	attempts, backoff := remoteRetry()
	var out []*remote.SyncReport
	var errs []error
	for _, url := range urls {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		sr := &remote.SyncReport{Remote: remote.Redact(url), Uploaded: []string{}, Removed: []string{}}
		r, err := openRemote(ctx, url, flags)
		if err == nil {
			pfn, clear := uploadProgress(g.stderr(), url)
			var got *remote.SyncReport
			got, err = remote.Sync(ctx, r, remote.Redact(url), remote.SyncOptions{
				Dir:      filepath.Dir(rep.Path),
				Source:   rep.Source,
				Newest:   rep.Path,
				Policy:   pol,
				Prune:    prune,
				Attempts: attempts,
				Backoff:  backoff,
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
	return out, &severalFailed{what: "remotes", failed: len(errs), total: len(urls), first: errs[0]}
}

func printRemotes(w io.Writer, srs []*remote.SyncReport) {
	for _, s := range srs {
		if s.Error != "" {
			fmt.Fprintf(w, "remote %s: FAILED after %d uploaded: %s\n", s.Remote, len(s.Uploaded), s.Error)
			continue
		}
		fmt.Fprintf(w, "remote %s: ok, uploaded %d (%d bytes), %d already there", s.Remote, len(s.Uploaded), s.Bytes, s.Present)
		if s.Pruned {
			fmt.Fprintf(w, "; kept %d, removed %d files", s.Kept, len(s.Removed))
		}
		fmt.Fprintln(w)
		for _, sk := range s.Skipped {
			fmt.Fprintf(w, "remote %s: not sent: %s\n", s.Remote, sk)
		}
	}
}

// remoteListJSON is one backup on a remote in list --remote's --json
// report.
type remoteListJSON struct {
	Remote string `json:"remote"`
	remote.Entry
}

// listRemotes is `list --remote URL`.
func listRemotes(ctx context.Context, g *Globals, urls []string, flags RemoteFlags, dbs []string) error {
	type listing struct {
		Remote  string
		Backups []remote.Entry
	}
	var all []listing
	for _, url := range urls {
		r, err := openRemote(ctx, url, flags)
		if err != nil {
			return err
		}
		es, err := remote.List(ctx, r, dbs, nil)
		r.Close()
		if err != nil {
			return err
		}
		all = append(all, listing{remote.Redact(url), es})
	}
	if g.JSON {
		for _, l := range all {
			for _, e := range l.Backups {
				g.addResult(remoteListJSON{l.Remote, e})
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REMOTE\tTIME\tBACKUP\tSIZE\tCOMPRESSION\tSHA256\tNOTE")
	for _, l := range all {
		if len(l.Backups) == 0 {
			// A bare header looks like a listing that went wrong.
			fmt.Fprintf(tw, "%s\t-\t(no backups)\t\t\t\t\n", l.Remote)
		}
		for _, e := range l.Backups {
			var note []string
			if e.Encryption != "" {
				note = append(note, e.Encryption)
			}
			if !e.Complete {
				note = append(note, "INCOMPLETE (sidecars missing: not a usable backup yet)")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Remote, e.Time.Format(time.DateTime), e.Name, humanBytes(e.Size), e.Compression, e.SHA256, strings.Join(note, " "))
		}
	}
	return tw.Flush()
}

// fetchRemote downloads URL/NAME and its sidecars into a new private
// directory under parent and returns the local backup path and the
// directory to remove.
func fetchRemote(ctx context.Context, g *Globals, objURL string, flags RemoteFlags, parent string) (string, string, error) {
	url, name, ok := remote.SplitObjectURL(objURL)
	if !ok {
		return "", "", usagef("sqlite-backup verify s3://bucket/prefix/app.db.20250101_120000", "%s: give the remote and the backup's name, URL/NAME", remote.Redact(objURL))
	}
	r, err := openRemote(ctx, url, flags)
	if err != nil {
		return "", "", err
	}
	defer r.Close()
	dir, err := os.MkdirTemp(parent, ".sqlite-backup-fetch-")
	if err != nil {
		return "", "", fmt.Errorf("temp dir for %s: %w", name, err)
	}
	var pfn func(done, total int64)
	if fn, clear := uploadProgress(g.stderr(), url); fn != nil {
		defer clear()
		pfn = func(done, total int64) { fn(name, done, total) }
	}
	p, err := remote.Fetch(ctx, r, name, dir, pfn)
	if err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return p, dir, nil
}

// pruneRemotes is `prune --remote URL`.
func pruneRemotes(ctx context.Context, g *Globals, urls []string, flags RemoteFlags, sources []string, pol retention.Policy, dryRun bool) error {
	attempts, backoff := remoteRetry()
	for _, url := range urls {
		r, err := openRemote(ctx, url, flags)
		if err != nil {
			return err
		}
		for _, src := range sources {
			abs, _ := filepath.Abs(src)
			rep, err := remote.Prune(ctx, r, remote.PruneOptions{Source: abs, Policy: pol, DryRun: dryRun, Attempts: attempts, Backoff: backoff})
			if err != nil {
				r.Close()
				return err
			}
			if g.JSON {
				g.addResult(remotePruneJSON{Remote: remote.Redact(url), Source: abs, OK: true, PruneReport: rep})
			} else {
				verb := "removed"
				names := rep.Removed
				if dryRun {
					verb = "would remove"
					names = nil
					for _, d := range rep.Remove {
						names = append(names, d.Name)
					}
				}
				for _, n := range names {
					fmt.Fprintf(g.stdout, "%s %s/%s\n", verb, remote.Redact(url), n)
				}
				fmt.Fprintf(g.stdout, "prune %s: %s: kept %d, %s %d backups\n", remote.Redact(url), rep.Policy, len(rep.Kept), verb, len(rep.Remove))
				if len(rep.Incomplete) > 0 {
					fmt.Fprintf(g.stdout, "prune %s: left alone %d incomplete uploads: %s\n", remote.Redact(url), len(rep.Incomplete), strings.Join(rep.Incomplete, ", "))
				}
			}
		}
		r.Close()
	}
	return nil
}

// remotePruneJSON is one database on one remote in prune --remote's
// --json report.
type remotePruneJSON struct {
	Remote string `json:"remote"`
	Source string `json:"source"`
	OK     bool   `json:"ok"`
	*remote.PruneReport
}
