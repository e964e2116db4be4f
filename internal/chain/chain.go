// Package chain writes and materializes incremental backups. A chain is
// a full backup (a plain SQLite file, as every full backup is) and the
// increments after it, each one LTX file (github.com/superfly/ltx, the
// format Litestream v0.5 restores from) of the pages that differ from
// the point before it.
//
// An increment reads one consistent snapshot of the source under one
// read transaction (snapshot.Pages), hashes every page and compares it
// with the page index of the parent point (internal/format/pageindex);
// only changed pages go into the LTX file. The state checksum of the
// database (LTX's XOR of per-page CRC-64s) is updated in O(changed
// pages) from the checksums the index keeps, and before the file gets
// its name it is decoded again and must hold exactly the pages read as
// changed: base + chain + it reproduce the snapshot that was read,
// provided the parent's files still hold what they held (which verify
// proves) and no two different pages share a 128-bit keyed hash.
//
// A point is materialized by streaming: the newest version of each page
// is written once, in page order, into a private temp file; its state
// checksum must equal the point's, integrity_check must pass, and only
// then does the file get its final name. Files are written only through
// internal/sys/fsx: temp name, fsync, rename without replacing,
// directory fsync.
package chain

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
)

// Point is one backup of a chain as the chain sees it: its file and its
// manifest's Chain record.
type Point struct {
	Path string
	// SHA256 is the file's hash as stored (its .sha256 sidecar); when
	// set, the file is checked against it before it is used.
	SHA256 string
	Chain  manifest.Chain
}

// Name is the base name of the point's file.
func (p Point) Name() string { return filepath.Base(p.Path) }

// NeedFullError says why the next point must be a full backup: nothing
// to build on, an unusable index, a page size change, too many changed
// pages, a chain too long or too old. Nothing was published.
type NeedFullError struct{ Reason string }

func (e *NeedFullError) Error() string { return "a full backup is needed: " + e.Reason }

func needFull(format string, args ...any) error {
	return &NeedFullError{Reason: fmt.Sprintf(format, args...)}
}

// IsNeedFull reports whether err says a full backup is needed, and why.
func IsNeedFull(err error) (string, bool) {
	var nf *NeedFullError
	if errors.As(err, &nf) {
		return nf.Reason, true
	}
	return "", false
}

// checksum parses a state checksum as manifests write it.
func checksum(s string) (ltx.Checksum, error) {
	c, err := ltx.ParseChecksum(s)
	if err != nil {
		return 0, err
	}
	if c&ltx.ChecksumFlag == 0 {
		return 0, fmt.Errorf("state checksum %s lacks its flag bit", s)
	}
	return c, nil
}

// txid is the LTX transaction ID of the point with sequence number seq:
// the full is transaction 1, its n-th increment n+1 (as in Litestream,
// where TXID 1 is the snapshot).
func txid(seq int) ltx.TXID { return ltx.TXID(seq + 1) }
