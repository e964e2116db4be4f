package backup

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/retention"
	"sqlite-backup/verify"
)

// Entry is one row of `list`.
type Entry struct {
	retention.Backup
	Source     string     `json:"source,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Check      string     `json:"check,omitempty"`
	// SHA256 is "present" or "missing" (sidecar), or after a check "ok"
	// or "mismatch".
	SHA256   string `json:"sha256"`
	Rows     *int64 `json:"rows,omitempty"`
	Tables   int    `json:"tables,omitempty"`
	Deep     bool   `json:"deep,omitempty"`
	Shrink   bool   `json:"shrink_warning,omitempty"`
	Manifest string `json:"manifest"` // "ok", "missing" or the error
	// Chain is the backup's place in an incremental chain, as its
	// manifest records it (kind, seq, parent, base, checked …).
	Chain *manifest.Chain `json:"chain,omitempty"`
	// Verify is the verdict of a fresh check (ListOptions.Verify).
	Verify *verify.Result `json:"verify,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// ListOptions for List.
type ListOptions struct {
	Dir    string
	DBs    []string // database file names to list; none for all
	Verify bool     // run verify.File on each (sha256, decompression, integrity)
	Quick  bool
	Deep   bool
	// TempDir is where compressed backups are decompressed to be checked.
	TempDir string
	Loc     *time.Location
	// Identities open encrypted backups and their sealed manifests.
	Identities []age.Identity
}

// List describes the backups in a directory, newest first.
func List(ctx context.Context, opts ListOptions) ([]Entry, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	all, err := retention.Find(dir, "", opts.Loc)
	if err != nil {
		return nil, err
	}
	var bs []retention.Backup
	for _, b := range all {
		if len(opts.DBs) == 0 || slices.Contains(opts.DBs, b.DB) {
			bs = append(bs, b)
		}
	}
	out := make([]Entry, 0, len(bs))
	for _, b := range bs {
		e := Entry{Backup: b, SHA256: "missing", Manifest: "ok"}
		if _, err := manifest.ReadSHA256(b.Path); err == nil {
			e.SHA256 = "present"
		}
		m, err := manifest.Read(b.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.Manifest = "missing"
		case err != nil:
			e.Manifest = err.Error()
		default:
			if m.Sealed != "" && len(opts.Identities) > 0 {
				if err := m.Open(b.Path+manifest.JSONSuffix, opts.Identities); err != nil {
					e.Manifest = err.Error()
				}
			}
			e.Source, e.VerifiedAt, e.Check = m.Source, m.VerifiedAt, m.Check
			if m.Content != nil {
				n := m.Content.TotalRows()
				e.Rows, e.Tables, e.Deep = &n, len(m.Content.Tables), m.Content.SHA256 != ""
			}
			e.Shrink = m.Flagged()
			e.Chain = m.Chain
		}
		if opts.Verify {
			var r verify.Result
			var err error
			if chain.IsIncrement(b.Path) {
				// Materialized from its chain and checked, with --deep
				// its content compared with its manifest.
				r, err = chain.Check(ctx, b.Path, chain.CheckOptions{Quick: opts.Quick, Deep: opts.Deep && e.Manifest == "ok", TempDir: opts.TempDir, Identities: opts.Identities})
			} else {
				r, err = verify.File(ctx, b.Path, verify.Options{Quick: opts.Quick, Deep: opts.Deep && e.Manifest == "ok", TempDir: opts.TempDir, Identities: opts.Identities})
			}
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			if err != nil {
				e.Error = err.Error()
			} else {
				e.Verify = &r
				if r.SHA256 != "" {
					e.SHA256 = r.SHA256
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}
