package main

import (
	"context"
	"fmt"
	"strings"

	"sqlite-backup/verify"
)

// VerifyCmd checks existing backup files without writing a byte.
type VerifyCmd struct {
	Files   []string `arg:"" name:"file" help:"Backup files to check."`
	Quick   bool     `help:"Run quick_check instead of the full integrity_check."`
	Deep    bool     `help:"Also recompute the row counts and content hash recorded in FILE.json and compare."`
	TempDir string   `placeholder:"DIR" help:"Where compressed backups are decompressed to be checked (default: the system temp dir)."`
}

func (c *VerifyCmd) Run(ctx context.Context, g *Globals) error {
	var failed, errs int
	var firstErr error
	for _, f := range c.Files {
		tty := newTTYStatus(g.stderr(), f)
		res, err := verify.File(ctx, f, verify.Options{Quick: c.Quick, Deep: c.Deep, TempDir: c.TempDir, BusyTimeout: g.BusyTimeout, Progress: tty.checkProgress("verify")})
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
				fmt.Fprintf(g.stdout, "%s: ERROR: %v\n", f, err)
			}
			continue
		}
		if !res.OK {
			failed++
		}
		if g.JSON {
			g.addResult(res)
		} else {
			if res.OK {
				fmt.Fprintf(g.stdout, "%s: ok%s\n", f, okDetails(res))
			} else {
				fmt.Fprintf(g.stdout, "%s: FAILED: %s\n", f, res.Summary())
			}
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
