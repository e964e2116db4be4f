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

// skippedResult is a backup's own sidecar named among the files: it is
// checked with its backup, not as a database, so it gets no verdict.
type skippedResult struct {
	Path    string `json:"path"`
	Skipped string `json:"skipped"`
}

func (c *VerifyCmd) Run(ctx context.Context, g *Globals) error {
	var failed, errs int
	var firstErr error
	given := map[string]bool{}
	for _, f := range c.Files {
		given[f] = true
	}
	checked := 0
	for _, f := range c.Files {
		if of, kind, ok := verify.SidecarOf(f); ok {
			why, cmd := fmt.Sprintf("the %s sidecar of %s, checked with it", kind, of), "sqlite-backup verify"
			if kind == "json" && !c.Deep {
				why, cmd = fmt.Sprintf("the manifest of %s, checked with it by verify --deep", of), "sqlite-backup verify --deep"
			}
			if !given[of] {
				why += fmt.Sprintf(" (%s %s)", cmd, of)
			}
			if g.JSON {
				g.addResult(skippedResult{Path: f, Skipped: why})
			} else {
				fmt.Fprintf(g.stdout, "%s: skipped: %s\n", f, why)
			}
			continue
		}
		checked++
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
		return &verifyFailed{failed: failed, total: checked}
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
