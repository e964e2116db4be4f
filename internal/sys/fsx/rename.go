package fsx

import (
	"errors"
	"io/fs"
	"os"
)

// RenameNoReplace renames oldpath to newpath, failing with fs.ErrExist
// rather than replacing a file that is already there: a published
// backup is never overwritten, not even by a run that picked the same
// name. Where the kernel or file system lacks renameat2's
// RENAME_NOREPLACE it falls back on link and unlink.
func RenameNoReplace(oldpath, newpath string) error { return renameNoReplace(oldpath, newpath) }

// linkRename is rename-without-replace built from link and unlink: link
// fails if newpath exists, and the file is never absent from both names.
func linkRename(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return err
	}
	return os.Remove(oldpath)
}
