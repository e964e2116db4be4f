package snapshot

import (
	"os"
	"path/filepath"
)

// heldElsewhere reports whether a descriptor of this process other than
// f refers to f's file: the file copy opens the -wal and -shm itself, and
// trusts a reading of them only if SQLite has the same files open (a
// path can name another file than the one SQLite opened: a link, a
// rename, a file replaced in between). known is false where it cannot
// be told.
func heldElsewhere(f *os.File) (held, known bool) {
	fi, err := f.Stat()
	if err != nil {
		return false, true
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false, false
	}
	n := 0
	for _, e := range fds {
		if st, err := os.Stat(filepath.Join("/proc/self/fd", e.Name())); err == nil && os.SameFile(st, fi) {
			n++
		}
	}
	return n >= 2, true
}
