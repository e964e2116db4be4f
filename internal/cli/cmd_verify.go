package cli

import (
	"context"
	"fmt"
	"strings"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// VerifyCmd checks existing backup files without writing a byte.
type VerifyCmd struct {
	Files   []string `arg:"" name:"file" help:"Backup files to check; a remote backup as URL/NAME (downloaded with its sidecars to --temp-dir, checked, removed)."`
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

func (c *VerifyCmd) Run(ctx context.Context, g *Globals) error {
	ids, err := c.identities()
	if err != nil {
		return err
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
		res, err := verify.File(ctx, c.Files[i], opts)
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
				fmt.Fprintf(g.stdout, "%s: FAILED: %s%s\n", redact.Printable(f), res.Summary(), noteOf(res))
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
