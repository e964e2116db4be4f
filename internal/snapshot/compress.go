package snapshot

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/sys/fsx"
)

// compressTemp streams the verified temp copy into a second temp file
// (compressed, so far smaller), fsyncs it and proves it decompresses to
// exactly the bytes that were verified. It returns the compressed temp
// file, the uncompressed size and the compressed file's sha256.
func compressTemp(ctx context.Context, tmp, dir, base string, kind compress.Kind) (string, int64, string, error) {
	ctmp, err := createTemp(dir, base)
	if err != nil {
		return "", 0, "", err
	}
	ok := false
	defer func() {
		if !ok {
			removeTemp(ctmp)
		}
	}()
	want, err := compress.Compress(ctx, kind, tmp, ctmp)
	if err != nil {
		return "", 0, "", err
	}
	if err := fsx.SyncFile(ctmp); err != nil {
		return "", 0, "", fmt.Errorf("fsync backup %q: %w", ctmp, err)
	}
	got, size, fileSum, err := compress.Check(ctx, ctmp)
	if err != nil {
		return "", 0, "", err
	}
	if got != want {
		return "", 0, "", fmt.Errorf("compress backup %q: decompressed copy differs from the verified backup (sha256 %s, want %s)", ctmp, got, want)
	}
	ok = true
	return ctmp, size, fileSum, nil
}

// snapshotOfCopy runs the Snapshot hook on the finished VACUUM INTO copy,
// which holds exactly the snapshot VACUUM read.
func snapshotOfCopy(ctx context.Context, tmp string, fn func(context.Context, *sql.Conn) error) error {
	uri, err := sqlitefile.URI(tmp, url.Values{"mode": {"ro"}, "immutable": {"1"}})
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return fmt.Errorf("read backup %q: %w", tmp, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("read backup %q: %w", tmp, err)
	}
	defer conn.Close()
	if err := fn(ctx, conn); err != nil {
		return fmt.Errorf("read backup %q: %w", tmp, err)
	}
	return nil
}
