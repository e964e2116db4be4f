package remote

import (
	"context"
	"errors"
	"fmt"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fsx"
)

// FetchURL downloads the backup URL/NAME names, with its sidecars, into a
// new private directory under parent (Fetch) and returns the local
// backup's path and release, which removes the directory. The run holds
// the directory (fsx.HeldDir) until release: if it is killed, the next
// run that looks in parent removes what it left (fsx.RemoveDead). A URL
// without a NAME is a usage error.
func FetchURL(ctx context.Context, objURL string, o Options, parent string, progress func(done, total int64)) (local string, release func(), err error) {
	url, name, ok := SplitObjectURL(objURL)
	if !ok {
		return "", nil, &Error{URL: Redact(objURL), Kind: KindUsage, Err: hint.Wrap(errors.New("give the remote and the backup's name, URL/NAME"), "sqlite-backup verify s3://bucket/prefix/app.db.20250101_120000")}
	}
	r, err := Open(ctx, url, o)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	dir, err := fsx.MkdirHeld(parent, FetchDirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("temp dir for %s: %w", name, err)
	}
	p, err := Fetch(ctx, r, name, dir.Path, progress)
	if err != nil {
		dir.Release()
		return "", nil, err
	}
	return p, dir.Release, nil
}

// FetchDirPrefix starts the name of the private directory FetchURL
// downloads into.
const FetchDirPrefix = fsx.FetchDirPrefix
