package cli

import (
	"context"
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
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/internal/output/size"
	"sqlite-backup/internal/retention"
	"sqlite-backup/remote"
	_ "sqlite-backup/remote/s3"   // s3://bucket[/prefix]
	_ "sqlite-backup/remote/sftp" // sftp://user@host[:port]/abs/dir
)

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

// uploadProgress keeps one status line per upload on a terminal.
func uploadProgress(stderr io.Writer, url string) (func(name string, done, total int64), func()) {
	u := newUploadLine(stderr, url)
	if u == nil {
		return nil, func() {}
	}
	return u.progress, u.done
}

// uploadLine is the status line of the uploads to one remote: the bytes
// sent, then how the copy is being checked (that can take as long).
type uploadLine struct {
	stderr io.Writer
	url    string
	line   *progress.Line
	cur    string
}

// newUploadLine returns nil where stderr is no terminal.
func newUploadLine(stderr io.Writer, url string) *uploadLine {
	f, ok := terminal(stderr)
	if !ok {
		return nil
	}
	return &uploadLine{stderr: f, url: url}
}

func (u *uploadLine) at(name string) {
	if name != u.cur {
		if u.line != nil {
			u.line.Done()
		}
		u.line, u.cur = progress.New(u.stderr, "upload "+redact.Printable(remote.Redact(u.url)), 0), name
	}
}

func (u *uploadLine) progress(name string, done, total int64) {
	u.at(name)
	pct := int64(100)
	if total > 0 {
		pct = done * 100 / total
	}
	u.line.Note(fmt.Sprintf("%s %d/%d MB %d%%", redact.Printable(name), done>>20, total>>20, pct))
}

func (u *uploadLine) phase(name, phase string) {
	u.at(name)
	u.line.Note(fmt.Sprintf("%s sent, checking: %s", redact.Printable(name), phase))
}

func (u *uploadLine) done() {
	if u.line != nil {
		u.line.Done()
	}
}

func printRemotes(w io.Writer, srs []*remote.SyncReport) {
	// Why a local backup stays is the same for every remote: said once.
	seen := map[string]bool{}
	for _, s := range srs {
		if s.Error != "" {
			fmt.Fprintf(w, "remote %s: FAILED after %d uploaded: %s\n", redact.Printable(s.Remote), len(s.Uploaded), redact.Printable(s.Error))
		} else {
			fmt.Fprintf(w, "remote %s: ok, uploaded %d (%d bytes), %d already there", redact.Printable(s.Remote), len(s.Uploaded), s.Bytes, s.Present)
			if s.Pruned {
				fmt.Fprintf(w, "; kept %d, removed %d files", s.Kept, len(s.Removed))
			}
			fmt.Fprintln(w)
		}
		if l := s.Litestream; l != nil && len(l.Uploaded)+len(l.Removed) > 0 {
			fmt.Fprintf(w, "remote %s: litestream replica: uploaded %d, removed %d files\n", redact.Printable(s.Remote), len(l.Uploaded), len(l.Removed))
		}
		for _, sk := range s.Skipped {
			if !seen[sk] {
				seen[sk] = true
				fmt.Fprintf(w, "not sent off-site: %s\n", redact.Printable(sk))
			}
		}
	}
}

// warnOffsite says on stderr what needs a person after a run with
// remotes: damaged local backups, and backups kept past the retention
// rules because a remote lacks them.
func warnOffsite(w io.Writer, rep *backup.Report) {
	for _, s := range rep.Remotes {
		if s.Error != "" && len(s.Pending) > 0 {
			fmt.Fprintf(w, "sqlite-backup: warning: remote %s lacks %s of %s, oldest %s; kept here until it has them\n", redact.Printable(s.Remote), backups(len(s.Pending)), redact.Printable(rep.Source), redact.Printable(s.Pending[len(s.Pending)-1]))
		}
	}
	for _, d := range rep.Damaged {
		fmt.Fprintf(w, "sqlite-backup: WARNING: %s is %s: not sent off-site, the other backups were; check the disk, then remove it (sqlite-backup verify %s)\n", redact.Printable(d.Path), d.Error, redact.Printable(hint.Quote(d.Path)))
	}
	for _, s := range rep.Remotes {
		if s.Error == "" && len(s.HeldBack) > 0 {
			fmt.Fprintf(w, "sqlite-backup: warning: remote %s: %s not sent: a point of their chain cannot go, and a remote gets an increment only with its whole chain (each named in the report)\n", redact.Printable(s.Remote), increments(len(s.HeldBack)))
		}
	}
	if n := len(rep.KeptForRemotes); n > 0 {
		var bytes int64
		for _, p := range rep.KeptForRemotes {
			if fi, err := os.Stat(p); err == nil {
				bytes += fi.Size()
			}
		}
		fmt.Fprintf(w, "sqlite-backup: warning: %s (%s) kept past the retention rules until every remote has them, oldest %s; the backlog grows with each run until the remotes work again\n",
			backups(n), size.Human(bytes), redact.Printable(filepath.Base(rep.KeptForRemotes[len(rep.KeptForRemotes)-1])))
	}
}

func increments(n int) string {
	if n == 1 {
		return "1 increment"
	}
	return fmt.Sprintf("%d increments", n)
}

func backups(n int) string {
	if n == 1 {
		return "1 backup"
	}
	return fmt.Sprintf("%d backups", n)
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
		r, err := remote.Open(ctx, url, flags.options())
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
	// Rows fit 100 columns: the remote is a heading, not a column; the
	// name carries the time and compression; the SHA-256 is cut to the
	// 12 digits that tell backups apart by eye (--json has it whole).
	for i, l := range all {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		if len(l.Backups) == 0 {
			// A bare header looks like a listing that went wrong.
			what := "no backups"
			if len(dbs) > 0 {
				what += " of " + strings.Join(dbs, ", ")
			}
			fmt.Fprintf(g.stdout, "%s: %s\n", redact.Printable(l.Remote), what)
			continue
		}
		n := fmt.Sprintf("%d backups", len(l.Backups))
		if len(l.Backups) == 1 {
			n = "1 backup"
		}
		fmt.Fprintf(g.stdout, "%s: %s\n", redact.Printable(l.Remote), n)
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKUP\tSIZE\tSHA256\tNOTE")
		incomplete, orphan := false, ""
		for _, e := range l.Backups {
			var note []string
			if e.Kind == retention.KindIncrement {
				// Its parent is in its manifest: --json and list of a
				// local copy name it.
				note = append(note, "increment")
			}
			if e.Encryption != "" {
				note = append(note, e.Encryption)
			}
			if !e.Complete {
				note = append(note, "INCOMPLETE")
				incomplete = true
			}
			if e.Missing != "" {
				note = append(note, "ORPHAN")
				if orphan == "" {
					orphan = fmt.Sprintf("%s needs %s", e.Name, e.Missing)
				}
			}
			sum := e.SHA256
			if len(sum) > 12 {
				sum = sum[:12]
			}
			if sum == "" {
				sum = "-"
			}
			// Names come from the remote's listing: escapes and
			// newlines in them are shown, not obeyed.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", redact.Printable(e.Name), size.Human(e.Size), redact.Printable(sum), strings.Join(note, " "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if incomplete {
			fmt.Fprintln(g.stdout, "INCOMPLETE: its .sha256 or .json is missing; not usable until a backup run sends it")
		}
		if orphan != "" {
			fmt.Fprintf(g.stdout, "ORPHAN: an increment whose chain this remote does not hold whole (%s); it cannot be restored from here until a backup run sends what it needs\n", redact.Printable(orphan))
		}
	}
	return nil
}

// fetchProgress follows the download of URL/NAME on a terminal.
func fetchProgress(stderr io.Writer, objURL string) (func(done, total int64), func()) {
	url, name, _ := remote.SplitObjectURL(objURL)
	fn, clear := uploadProgress(stderr, url)
	if fn == nil {
		return nil, clear
	}
	return func(done, total int64) { fn(name, done, total) }, clear
}

// pruneRemotes is `prune --remote URL`.
func pruneRemotes(ctx context.Context, g *Globals, urls []string, flags RemoteFlags, sources []string, pol retention.Policy, dryRun bool) error {
	attempts, backoff := remoteRetry()
	for _, url := range urls {
		r, err := remote.Open(ctx, url, flags.options())
		if err != nil {
			return err
		}
		for _, src := range sources {
			abs, _ := filepath.Abs(src)
			// Only the backups this backup directory's runs sent: the
			// owner their manifests record.
			owner, err := backup.OwnerOf(g.BackupDir, abs)
			if err != nil {
				r.Close()
				return err
			}
			rep, err := remote.Prune(ctx, r, remote.PruneOptions{Owner: owner, Policy: pol, DryRun: dryRun, Attempts: attempts, Backoff: backoff})
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
					fmt.Fprintf(g.stdout, "%s %s/%s\n", verb, redact.Printable(remote.Redact(url)), redact.Printable(n))
				}
				fmt.Fprintf(g.stdout, "prune %s: %s: kept %d, %s %d backups\n", remote.Redact(url), rep.Policy, len(rep.Kept), verb, len(rep.Remove))
				if len(rep.Foreign) > 0 {
					fmt.Fprintf(g.stdout, "prune %s: left alone %d backups that another backup directory or database sent (their manifests name another owner): %s\n", remote.Redact(url), len(rep.Foreign), redact.Printable(strings.Join(rep.Foreign, ", ")))
				}
				if len(rep.Incomplete) > 0 {
					fmt.Fprintf(g.stdout, "prune %s: left alone %d incomplete uploads: %s\n", remote.Redact(url), len(rep.Incomplete), redact.Printable(strings.Join(rep.Incomplete, ", ")))
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
