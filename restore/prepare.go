package restore

import (
	"context"
	"fmt"
	"os"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fsx"
)

// prepare returns the plain, self-contained SQLite file to restore from:
// decompressed, the copy verify.File already decompressed and checked
// (the caller removes it); otherwise the backup itself, which must have
// no -wal or hot -journal beside it.
func prepare(ctx context.Context, path, decompressed string) (plain string, err error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if decompressed != "" {
		return decompressed, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open backup %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	// A WAL-flagged file without a -wal (a cp of a stopped WAL database)
	// is whole; the restored copy gets the target's journal mode anyway.
	if _, err := sqlitefile.ReadHeader(f); err != nil {
		return "", fmt.Errorf("read backup %q: %w", path, err)
	}
	// A backup must be one file: a -wal or hot -journal beside it holds
	// part of its content, which a byte copy (offline restore) would
	// miss. Backups this tool writes are always self-contained.
	for _, s := range []string{"-wal", "-journal"} {
		if fi, err := os.Stat(path + s); err == nil && fi.Size() > 0 {
			return "", hint.Wrap(fmt.Errorf("backup %q is not self-contained: it has a %s file beside it", path, s),
				"make a self-contained copy first: sqlite-backup --source %s --backup %s", hint.Quote(path), hint.Quote(path+".plain"))
		}
	}
	return path, nil
}
