package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"sqlite-backup/remote"

	"sqlite-backup/verify"
)

// VerifyCmd checks existing backup files without writing a byte.
type VerifyCmd struct {
	Files   []string `arg:"" name:"file" help:"Backup files to check; a remote backup as URL/NAME (downloaded with its sidecars to --temp-dir, checked, removed)."`
	Quick   bool     `help:"Run quick_check instead of the full integrity_check."`
	Deep    bool     `help:"Also recompute the row counts and content hash recorded in FILE.json and compare."`
	TempDir string   `placeholder:"DIR" help:"Where compressed backups are decompressed to be checked (default: the system temp dir)."`
	RemoteFlags
}

type verifyReport struct {
	OK    bool            `json:"ok"`
	Files []verify.Result `json:"files"`
	// Errors are files that could not be read at all.
	Errors map[string]string `json:"errors,omitempty"`
}

func (c *VerifyCmd) Run(ctx context.Context, g *Globals) error {
	rep := verifyReport{OK: true, Errors: map[string]string{}}
	var failed, errs int
	var firstErr error
	for _, f := range c.Files {
		local, cleanup := f, func() {}
		var err error
		if isRemoteURL(f) {
			var dir string
			local, dir, err = fetchRemote(ctx, g, f, c.RemoteFlags, c.TempDir)
			cleanup = func() { os.RemoveAll(dir) }
		}
		var res verify.Result
		if err == nil {
			_, vp, clearProgress := ttyProgress(g.stderr(), local)
			res, err = verify.File(ctx, local, verify.Options{Quick: c.Quick, Deep: c.Deep, TempDir: c.TempDir, BusyTimeout: g.BusyTimeout, Progress: vp})
			clearProgress()
			if local != f {
				res.Path = remote.Redact(f)
			}
		}
		cleanup()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs++
			if firstErr == nil {
				firstErr = err
			}
			rep.Errors[f] = err.Error()
			if !g.JSON {
				fmt.Fprintf(g.stdout, "%s: ERROR: %v\n", f, err)
			}
			continue
		}
		rep.Files = append(rep.Files, res)
		if !res.OK {
			failed++
		}
		if !g.JSON {
			if res.OK {
				fmt.Fprintf(g.stdout, "%s: ok%s\n", f, okDetails(res))
			} else {
				fmt.Fprintf(g.stdout, "%s: FAILED: %s\n", f, res.Summary())
			}
		}
	}
	rep.OK = failed == 0 && errs == 0
	if g.JSON {
		if err := json.NewEncoder(g.stdout).Encode(rep); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return &verifyFailed{failed: failed, total: len(c.Files)}
	case errs > 0:
		return firstErr
	}
	return nil
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
