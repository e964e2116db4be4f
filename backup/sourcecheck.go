package backup

import (
	"fmt"
	"os"

	"sqlite-backup/sqlitefile"
)

// checkTruncated reports a source that is shorter than its header says.
// Only a stand-alone file can be judged: with a -wal or a hot -journal
// beside it the file's size may legitimately disagree with the header.
// Without this check SQLite says "database disk image is malformed",
// which does not tell the operator what happened to the file.
func checkTruncated(src string, size int64, h sqlitefile.Header) error {
	for _, s := range []string{"-wal", "-journal"} {
		if _, err := os.Lstat(src + s); err == nil {
			return nil
		}
	}
	have := size / int64(h.PageSize)
	switch {
	case size%int64(h.PageSize) != 0:
		return fmt.Errorf("open source %q: truncated: size %d is not a multiple of the page size %d", src, size, h.PageSize)
	case h.PagesValid && h.Pages > have:
		return fmt.Errorf("open source %q: truncated: header says %d pages, file holds %d", src, h.Pages, have)
	}
	return nil
}
