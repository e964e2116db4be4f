package snapshot

import (
	"fmt"
	"path/filepath"

	"sqlite-backup/internal/output/hint"
)

// nameMax is the longest file name, in bytes, that ext4, xfs, btrfs and
// tmpfs allow.
const nameMax = 255

// checkNameLength refuses, before anything is copied, a backup whose
// longest file name the file system would reject. The longest name a run
// writes is the temp file of a sidecar:
// .sqlite-backup-tmp-<backup>.sha256-<12 hex>, where <backup> may carry a
// same-second "-N" and a compression suffix. Without this check a long
// database name got its backup published, then failed writing the
// checksum: a success line on stdout and exit 1.
func checkNameLength(src, dir, published string) error {
	longest := len(TempPrefix) + len(published) + len(".sha256") + 1 + 12
	if longest <= nameMax {
		return nil
	}
	return hint.Wrap(fmt.Errorf("backup of %q: names in %q would be up to %d bytes, longer than file systems allow (%d): file name too long",
		src, dir, longest, nameMax),
		"name the backup yourself: sqlite-backup --source %s --backup %s", hint.Quote(src), hint.Quote(filepath.Join(dir, "short.db")))
}

// longestPublished is the longest name a named backup of src may get:
// <db-file>.YYYYMMDD_HHMMSS-NNN plus a compression suffix (.zst is the
// longer one).
func longestPublished(src string) string {
	return filepath.Base(src) + "." + TimeFormat + "-999" + ".zst"
}
