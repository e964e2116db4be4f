package restore

import (
	"context"
	"fmt"
	"os"

	"sqlite-backup/compress"
	"sqlite-backup/fsx"
	"sqlite-backup/hint"
	"sqlite-backup/sqlitefile"
)

// prepare turns the backup at path into a plain, self-contained SQLite
// file that the restore can read, and returns it with a cleanup to call
// when the restore is done. tmpDir is where it may write a plain copy
// (the target's directory: the space is needed there anyway).
//
// A plain backup is returned as it is. A compressed one (.zst, .gz,
// recognised by its magic bytes) is decompressed into a private temp file
// in tmpDir, which cleanup removes; everything after works on the plain
// file. The backup's checksum sidecar and integrity are checked before
// this is called, by verify.File on the backup as given.
func prepare(ctx context.Context, path, tmpDir string) (plain string, cleanup func(), err error) {
	nop := func() {}
	if err := ctx.Err(); err != nil {
		return "", nop, err
	}
	if compress.KindOf(path) != compress.None {
		tmp, err := compress.DecompressTo(ctx, path, tmpDir)
		if err != nil {
			return "", nop, fmt.Errorf("decompress backup %q: %w", path, err)
		}
		cleanup = func() { os.Remove(tmp) }
		f, err := os.Open(tmp)
		if err != nil {
			cleanup()
			return "", nop, fmt.Errorf("open decompressed backup %q: %w", tmp, fsx.PathErr(err))
		}
		_, err = sqlitefile.ReadHeader(f)
		f.Close()
		if err != nil {
			cleanup()
			return "", nop, fmt.Errorf("read decompressed backup %q: %w", path, err)
		}
		return tmp, cleanup, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", nop, fmt.Errorf("open backup %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	h, err := sqlitefile.ReadHeader(f)
	if err != nil {
		return "", nop, fmt.Errorf("read backup %q: %w", path, err)
	}
	// A backup must be one file: a -wal or hot -journal beside it holds
	// part of its content, which a byte copy (offline restore) would
	// miss. Backups this tool writes are always self-contained.
	for _, s := range []string{"-wal", "-journal"} {
		if fi, err := os.Stat(path + s); err == nil && fi.Size() > 0 {
			return "", nop, hint.Wrap(fmt.Errorf("backup %q is not self-contained: it has a %s file beside it", path, s),
				"make a self-contained copy first: sqlite-backup --source %q --backup %q", path, path+".plain")
		}
	}
	// A WAL-flagged file without a -wal (a cp of a stopped WAL database)
	// is whole; the restored copy gets the target's journal mode anyway.
	_ = h
	return path, nop, nil
}
