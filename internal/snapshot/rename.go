package snapshot

import (
	"errors"
	"io/fs"
	"os"
)

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
