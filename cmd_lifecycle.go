package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"sqlite-backup/lifecycle"
	"sqlite-backup/manifest"
	"sqlite-backup/retention"
	"sqlite-backup/verify"
)

// RetentionFlags are shared by backup and prune.
type RetentionFlags struct {
	Keep        int `default:"10" placeholder:"N" help:"Keep the N newest backups of the database (default ${default}; 0 with no other --keep-* keeps all)."`
	KeepDaily   int `placeholder:"D" help:"Also keep the newest backup of each of the last D days that have one."`
	KeepWeekly  int `placeholder:"W" help:"Also keep the newest backup of each of the last W weeks that have one."`
	KeepMonthly int `placeholder:"M" help:"Also keep the newest backup of each of the last M months that have one."`
}

func (r RetentionFlags) policy() (retention.Policy, error) {
	for _, f := range []struct {
		name string
		n    int
	}{{"keep", r.Keep}, {"keep-daily", r.KeepDaily}, {"keep-weekly", r.KeepWeekly}, {"keep-monthly", r.KeepMonthly}} {
		if f.n < 0 {
			return retention.Policy{}, usagef("sqlite-backup --source app.db --keep 10 --keep-daily 7", "--%s %d: give a count of 0 or more", f.name, f.n)
		}
	}
	return retention.Policy{Last: r.Keep, Daily: r.KeepDaily, Weekly: r.KeepWeekly, Monthly: r.KeepMonthly}, nil
}

func (g *Globals) stderr() io.Writer {
	if g.stderrW != nil {
		return g.stderrW
	}
	return os.Stderr
}

// lifecycleFields are appended to the backup's JSON object.
type lifecycleFields struct {
	SHA256   string              `json:"sha256,omitempty"`
	Manifest string              `json:"manifest,omitempty"`
	Rows     int64               `json:"rows"`
	Content  string              `json:"content_sha256,omitempty"`
	Shrink   []manifest.Shrink   `json:"shrink_warnings,omitempty"`
	Compared string              `json:"compared_with,omitempty"`
	Removed  []retention.Removed `json:"removed"`
	Skipped  string              `json:"prune_skipped,omitempty"`
	// ContentError says why row counts are missing from the manifest.
	ContentError string `json:"content_error,omitempty"`
}

func fieldsOf(r *lifecycle.Report) lifecycleFields {
	f := lifecycleFields{r.SHA256, r.Manifest, r.Rows, r.Content, r.Shrink, r.Compared, []retention.Removed{}, r.Skipped, r.ContentError}
	if r.Prune != nil {
		f.Removed = r.Prune.Removed
	}
	return f
}

// warnShrink is loud on purpose: a database that lost most of its rows
// is the one case where the newest backup may be the worst one.
func warnShrink(w io.Writer, r *lifecycle.Report) {
	if r.ContentError != "" {
		fmt.Fprintf(w, "sqlite-backup: warning: %s: %s\n", r.Source, r.ContentError)
	}
	if len(r.Shrink) == 0 {
		return
	}
	fmt.Fprintf(w, "sqlite-backup: WARNING: %s shrank sharply since %s:\n", r.Source, r.Compared)
	for _, s := range r.Shrink {
		fmt.Fprintf(w, "  table %s: %d -> %d rows (-%.0f%%)\n", s.Table, s.Before, s.After, s.Percent)
	}
	fmt.Fprintf(w, "sqlite-backup: WARNING: older backups were NOT pruned; check the application before the next runs (--shrink-guard 0 turns this off)\n")
}

// printLifecycle adds what pruning did to the backup's line.
func printLifecycle(w, errw io.Writer, r *lifecycle.Report) {
	switch {
	case r.Skipped == lifecycle.SkipUnverified:
		fmt.Fprintf(errw, "sqlite-backup: note: older backups not pruned: the new backup was not verified\n")
	case r.Skipped == lifecycle.SkipInterrupted:
		fmt.Fprintf(errw, "sqlite-backup: note: pruning interrupted; the backup above is complete, the next run prunes the rest\n")
	case r.Prune != nil:
		// Cron output stays short: the backups removed, not each sidecar.
		for _, rm := range r.Prune.Removed {
			if !strings.HasSuffix(rm.Path, manifest.SHA256Suffix) && !strings.HasSuffix(rm.Path, manifest.JSONSuffix) {
				fmt.Fprintf(w, "removed %s\n", rm.Path)
			}
		}
	}
}

func printPrune(w io.Writer, p *lifecycle.PruneReport) {
	verb := "removed"
	if p.DryRun {
		verb = "would remove"
		for _, d := range p.Remove {
			fmt.Fprintf(w, "%s %s\n", verb, d.Path)
		}
	} else {
		for _, r := range p.Removed {
			fmt.Fprintf(w, "%s %s\n", verb, r.Path)
		}
	}
	n := len(p.Remove)
	fmt.Fprintf(w, "prune: %s: kept %d, %s %d\n", p.Policy, len(p.Kept), verb, n)
	if len(p.Foreign) > 0 {
		fmt.Fprintf(w, "prune: left alone %d backups of another database with the same file name: %s\n", len(p.Foreign), strings.Join(p.Foreign, ", "))
	}
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
