package restore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/verify"
)

// materialize makes the database a point of an incremental chain holds
// (bk, an .ltx[.age] increment) in a private directory beside the
// target: its chain found by the manifests in bk's directory, encrypted
// files checked against their .sha256 and decrypted, the pages merged,
// the state checksum and integrity_check proven (chain.Materialize). A
// damaged or missing file of the chain fails as a failed verification
// naming it. The caller releases op, which removes it all.
func materialize(ctx context.Context, bk, target string, opts Options) (*chain.Opened, *chain.Materialized, error) {
	op, err := chain.Open(ctx, bk, chain.OpenOptions{Identities: opts.Identities, TempDir: filepath.Dir(target)})
	if err == nil {
		var dir string
		if dir, err = op.Dir(filepath.Dir(target)); err == nil {
			name := strings.TrimSuffix(filepath.Base(bk), ".age")
			var m *chain.Materialized
			m, err = op.Materialize(ctx, chain.MaterializeOptions{Path: filepath.Join(dir, name+".db")})
			if err == nil {
				for _, f := range op.Files {
					m.Check.Chain = append(m.Check.Chain, filepath.Base(f))
				}
				m.Check.Path = bk
				return op, m, nil
			}
		}
	}
	var fe *verify.FailedError
	switch {
	case errors.Is(err, chain.ErrNeedIdentity):
		return op, nil, fmt.Errorf("restore from %q: %w", opts.Backup, ErrNeedIdentity)
	case errors.As(err, &fe):
		return op, nil, hint.Wrap(fmt.Errorf("backup %q failed verification; nothing was restored: %w", opts.Backup, err),
			"pick another point: sqlite-backup list --backup-dir %s", hint.Quote(filepath.Dir(bk)))
	}
	return op, nil, fmt.Errorf("restore from %q: %w", opts.Backup, err)
}

// pointSize is the size of the database a point holds, by its manifest
// (0 when unknown).
func pointSize(bk string) int64 {
	if m, err := manifest.Read(bk); err == nil && m.Chain != nil {
		return m.Chain.Pages * int64(m.Chain.PageSize)
	}
	return 0
}
