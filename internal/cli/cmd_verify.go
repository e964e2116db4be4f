package cli

import (
	"context"
	"errors"

	"fmt"
	"github.com/alecthomas/kong"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sqlite-backup/config"
	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/litestream"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// VerifyCmd checks existing backup files without writing a byte.
type VerifyCmd struct {
	Files   []string `arg:"" optional:"" name:"file" help:"Backup files to check (an increment, .ltx, is checked materialized from its chain); a remote backup as URL/NAME (downloaded with its sidecars to --temp-dir, checked, removed); a Litestream replica (a directory, sftp://…/dir or s3://bucket/prefix: its newest point, or --at, --txid, built in --temp-dir and checked)."`
	At      string   `placeholder:"TIME" env:"-" help:"Instead of FILE, check the newest backup of the database (--source) in --backup-dir, or on --remote, taken at or before TIME: \"YYYY-MM-DD HH:MM[:SS]\" in local time, or RFC 3339. With a Litestream replica as FILE: its newest point before TIME."`
	TXID    string   `name:"txid" placeholder:"TXID" env:"-" help:"With a Litestream replica as FILE: check the point that ends at this TXID (hex, as in its file names)."`
	Remote  []string `placeholder:"URL" help:"With --at: pick the backup on this remote (sftp://… or s3://…) instead of --backup-dir."`
	Quick   bool     `help:"Run quick_check instead of the full integrity_check."`
	Deep    bool     `help:"Also recompute the row counts and content hash recorded in FILE.json and compare."`
	TempDir string   `placeholder:"DIR" help:"Where compressed or encrypted backups are decompressed or decrypted to be checked (default: the system temp dir)."`
	IdentityFlags
	RemoteFlags
}

// skippedResult is a backup's own sidecar named among the files: it is
// checked with its backup, not as a database, so it gets no verdict.
type skippedResult struct {
	Path    string `json:"path"`
	Skipped string `json:"skipped"`
}

// uncheckedResult is an encrypted backup whose content could not be
// checked for want of --identity: no verdict, so not ok, with the error
// and hint a failed result carries.
type uncheckedResult struct {
	verify.Result
	Error string `json:"error"`
	Hint  string `json:"hint"`
}

func (c *VerifyCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	ids, err := c.identities()
	if err != nil {
		return err
	}
	if c.At == "" && len(c.Remote) > 0 && originOf(kctx, "remote").Origin == config.FromFlag {
		return usagef("sqlite-backup verify s3://bucket/prefix/app.db.20260101_120000   (or --at TIME --remote URL)", "--remote picks a backup by time with --at; to name one, give it as URL/NAME")
	}
	replicaTXID, err := parseTXID(c.TXID, c.At)
	if err != nil {
		return usagef("sqlite-backup verify /srv/litestream/app --txid 0000000000000a3f", "%v", err)
	}
	var replicaAt time.Time
	switch {
	case c.At != "" && len(c.Files) > 0:
		// A Litestream replica's point by time: checked below that every
		// file given is one.
		if replicaAt, err = parseAt(c.At); err != nil {
			return usagef(`sqlite-backup verify /srv/litestream/app --at "2026-01-02 15:04"`, "%v", err)
		}
	case c.At != "":
		p, err := pointAt(ctx, kctx, g, c.At, "verify", c.Remote, c.RemoteFlags)
		if u := (*atUsage)(nil); errors.As(err, &u) {
			return usagef(`sqlite-backup verify --at "2026-01-02 15:04" --source /srv/app/app.db --backup-dir /backup   (or --remote URL instead of --backup-dir)`, "%v", u)
		}
		if err != nil {
			return err
		}
		c.Files = []string{p.Path}
	case len(c.Files) == 0:
		return usagef("sqlite-backup verify /backup/app.db.20260101_120000   (or --at \"2026-01-02 15:04\")", "no file given: name the backups to check, or a time with --at")
	}
	var failed, errs int
	var firstErr error
	var unchecked []string // encrypted, not opened: no verdict
	given := map[string]bool{}
	for _, f := range c.Files {
		given[f] = true
	}
	checked := 0
	for i, f := range c.Files {
		if of, kind, ok := verify.SidecarOf(f); ok {
			shown := redact.Printable(of)
			why, cmd := fmt.Sprintf("the %s sidecar of %s, checked with it", kind, shown), "sqlite-backup verify"
			if kind == "json" && !c.Deep {
				why, cmd = fmt.Sprintf("the manifest of %s, checked with it by verify --deep", shown), "sqlite-backup verify --deep"
			}
			if !given[of] {
				why += fmt.Sprintf(" (%s %s)", cmd, shellQuote(of))
			}
			if g.JSON {
				g.addResult(skippedResult{Path: f, Skipped: why})
			} else {
				fmt.Fprintf(g.stdout, "%s: skipped: %s\n", redact.Printable(f), why)
			}
			continue
		}
		db, ok := pageIndexOf(f)
		why := fmt.Sprintf("the page index of the incremental backups of %s, not a backup", db)
		if ok {
			if g.JSON {
				g.addResult(skippedResult{Path: f, Skipped: why})
			} else {
				fmt.Fprintf(g.stdout, "%s: skipped: %s\n", redact.Printable(f), why)
			}
			continue
		}
		checked++
		opts := verify.Options{Quick: c.Quick, Deep: c.Deep, TempDir: c.TempDir, BusyTimeout: g.BusyTimeout, Identities: ids, Remote: c.RemoteFlags.options()}
		if remote.IsURL(f) {
			// A remote backup is named by its redacted URL.
			f = remote.Redact(f)
			var clear func()
			opts.FetchProgress, clear = fetchProgress(g.stderr(), c.Files[i])
			defer clear()
		}
		tty := newTTYStatus(g.stderr(), f)
		opts.Progress = tty.checkProgress("verify")
		var res verify.Result
		var err error
		rep, isRep, rerr := openReplica(ctx, c.Files[i], opts.Remote)
		if rep != nil {
			defer rep.Close()
		}
		if !isRep && (replicaTXID != 0 || !replicaAt.IsZero()) {
			tty.clear()
			return usagef("sqlite-backup verify --at \"2026-01-02 15:04\" --backup-dir /backup --source /srv/app/app.db   (--at or --txid with files: only for Litestream replicas)",
				"%s is not a Litestream replica: --at or --txid with files is for a replica's points", f)
		}
		switch {
		case rerr != nil:
			err = rerr
		case isRep && c.Deep:
			err = hint.Wrap(fmt.Errorf("verify --deep %q: a Litestream replica has no manifest of rows to compare; its point is checked with integrity_check", f),
				"sqlite-backup verify %s", shellQuote(f))
		case isRep:
			res, err = checkReplica(ctx, rep, litestream.Options{TXID: replicaTXID, At: replicaAt, TempDir: c.TempDir, Quick: c.Quick, Check: opts.Progress})
		case chain.IsIncrement(c.Files[i]):
			// Materialized from its chain, then checked (and with --deep
			// its content compared with its manifest) as a full is.
			res, err = chain.Check(ctx, c.Files[i], chain.CheckOptions{Quick: c.Quick, Deep: c.Deep, TempDir: c.TempDir, Identities: ids, Remote: opts.Remote, FetchProgress: opts.FetchProgress})
		default:
			res, err = verify.File(ctx, c.Files[i], opts)
		}
		tty.clear()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs++
			if firstErr == nil {
				firstErr = err
			}
			if g.JSON {
				g.addResult(failedResult("", f, err))
			} else {
				fmt.Fprintf(g.stdout, "%s: ERROR: %v\n", redact.Printable(f), err)
			}
			continue
		}
		switch {
		case res.NotChecked != "":
			unchecked = append(unchecked, f)
		case !res.OK:
			failed++
		}
		if g.JSON {
			if res.NotChecked != "" {
				e := notCheckedError([]string{f})
				g.addResult(uncheckedResult{Result: res, Error: e.Error(), Hint: hint.Of(e)})
			} else {
				g.addResult(res)
			}
		} else {
			if res.NotChecked != "" {
				fmt.Fprintf(g.stdout, "%s: %s; content NOT CHECKED: %s\n", redact.Printable(f), readable(res), res.NotChecked)
			} else if res.OK {
				fmt.Fprintf(g.stdout, "%s: ok%s%s\n", redact.Printable(f), okDetails(res), noteOf(res))
			} else {
				as := ""
				if res.Replica != nil {
					as = " (read as a Litestream replica)"
				}
				fmt.Fprintf(g.stdout, "%s: FAILED%s: %s%s\n", redact.Printable(f), as, res.Summary(), noteOf(res))
			}
		}
	}
	switch {
	case failed > 0:
		return &verifyFailed{failed: failed, total: checked}
	case errs > 0:
		return firstErr
	case len(unchecked) > 0:
		return notCheckedError(unchecked)
	}
	return nil
}

// pageIndexOf says whether f is the page index of a backup directory's
// incremental chains (<db-file>.pageindex, by name and first bytes), so
// that verify of a directory's glob skips it rather than failing it.
func pageIndexOf(f string) (db string, ok bool) {
	db, ok = strings.CutSuffix(filepath.Base(f), pageindex.Suffix)
	if !ok || db == "" || remote.IsURL(f) {
		return "", false
	}
	return db, pageindex.Is(f)
}

// notCheckedError: encrypted files whose content was not checked have
// no verdict, like a database that changed while it was checked (exit
// 1), never a quiet pass.
func notCheckedError(files []string) error {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = shellQuote(f)
	}
	what := fmt.Sprintf("verify %q", files[0])
	if len(files) > 1 {
		what = fmt.Sprintf("verify: %d files", len(files))
	}
	return hint.Wrap(fmt.Errorf("%s: encrypted with age and no --identity given: content not checked, no verdict", what),
		"sqlite-backup verify -i KEY %s", strings.Join(q, " "))
}

// readable says what was checked of an encrypted file without its key.
func readable(r verify.Result) string {
	if r.SHA256 == "ok" {
		return "sha256 ok, age header ok"
	}
	return "age header ok"
}

// verifyFailed reports, after the per-file lines, that some failed (exit 3).
type verifyFailed struct{ failed, total int }

func (e *verifyFailed) Error() string {
	return fmt.Sprintf("%d of %d files failed verification", e.failed, e.total)
}

// okDetails says what else a passing verify checked, when anything.
func okDetails(r verify.Result) string {
	var d []string
	if r.SHA256 != "" {
		d = append(d, "sha256 "+r.SHA256)
	}
	if r.Encryption != "" && r.NotChecked == "" {
		d = append(d, "decrypted with age")
	}
	if r.Compression != "" {
		d = append(d, r.Compression)
	}
	if r.Content != "" {
		d = append(d, "content "+r.Content)
	}
	if n := len(r.Chain); n > 0 {
		d = append(d, fmt.Sprintf("materialized from %d files", n))
	}
	if p := r.Replica; p != nil {
		s := fmt.Sprintf("read as a Litestream replica: point TXID %s (%s) built from %d files", p.TXID, p.Time.Local().Format(time.DateTime), len(p.Files))
		if p.StateChecksum != "" {
			s += ", state checksum " + p.StateChecksum
		}
		d = append(d, s)
	}
	if len(d) == 0 {
		return ""
	}
	return " (" + strings.Join(d, ", ") + ")"
}

// noteOf is a result's note, when it has one, for the end of its line.
func noteOf(r verify.Result) string {
	if r.Note == "" {
		return ""
	}
	return "; " + r.Note
}

// openReplica opens f as a Litestream replica when it is one: a local
// directory, or a remote URL, with its layout. A URL whose listing
// fails is left to the download of URL/NAME, which says why better.
func openReplica(ctx context.Context, f string, ro remote.Options) (*litestream.Replica, bool, error) {
	if !remote.IsURL(f) {
		if fi, err := os.Stat(f); err != nil || !fi.IsDir() {
			return nil, false, nil
		}
	}
	r, err := litestream.Open(ctx, f, ro)
	switch {
	case errors.Is(err, litestream.ErrNotReplica):
		return nil, false, nil
	case err != nil && remote.IsURL(f):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return r, true, nil
}

// checkReplica builds a point of a replica and checks it. Damage is a
// failed result (exit 3) whose problem names the file at fault.
func checkReplica(ctx context.Context, r *litestream.Replica, o litestream.Options) (verify.Result, error) {
	m, err := r.Restore(ctx, o)
	var fe *verify.FailedError
	if errors.As(err, &fe) {
		res := fe.Result
		if res.Path != r.Location && len(res.Problems) > 0 {
			res.Problems[0] = res.Path + ": " + res.Problems[0]
		}
		res.Path = r.Location
		if res.Replica == nil {
			res.Replica = &verify.Replica{Kind: litestream.Kind}
		}
		return res, nil
	}
	if err != nil {
		return verify.Result{}, err
	}
	return m.Check, nil
}
