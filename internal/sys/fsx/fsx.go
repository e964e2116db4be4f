// Package fsx holds the few file-system steps every command of the tool
// takes the same way: private temp files with a name a later run can
// recognise as a dead run's leftover, fsync of files and directories so
// a rename survives a crash, and error messages that name the file once.
package fsx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temp file the tool writes. Runs
// holding a directory's lock remove files with this prefix as leftovers
// of killed runs, so nothing else may use it.
const TempPrefix = ".sqlite-backup-tmp-"

// CreateTemp creates a new file TempPrefix+base+"-<random>" in dir with
// exactly perm (the umask does not apply) and returns it open for
// writing. O_EXCL means a file or symlink planted under the name makes
// it try another name rather than write through it.
func CreateTemp(dir, base string, perm os.FileMode) (*os.File, error) {
	var rnd [6]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, TempPrefix+base+"-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, PathErr(err)
		}
		if err := f.Chmod(perm); err != nil {
			f.Close()
			os.Remove(p)
			return nil, PathErr(err)
		}
		return f, nil
	}
	return nil, errors.New("could not find a free temp file name")
}

// CreateEmptyTemp is CreateTemp for a file that something else (SQLite)
// will open and fill: it returns the path of the empty, closed file.
func CreateEmptyTemp(dir, base string, perm os.FileMode) (string, error) {
	f, err := CreateTemp(dir, base, perm)
	if err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", PathErr(err)
	}
	return f.Name(), nil
}

// SyncFile fsyncs the file at p.
func SyncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir fsyncs a directory, making a rename or unlink in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// SameFile reports whether a and b name the same existing file.
func SameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// PathErr drops the *PathError or *LinkError wrapper: the caller's
// message already names the file, and "open x: open x: permission
// denied" helps nobody.
func PathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// ContextReader stops a stream at the next read once ctx is canceled,
// so SIGINT ends a long copy, compression or encryption promptly and
// the caller removes its temp file.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
