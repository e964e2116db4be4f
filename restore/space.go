package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
)

// Space is what a restore writes in the target's directory before it
// frees anything, against what is free there. The whole sum has to fit:
// the decompressed backup, the safety copy and the new file (offline) or
// the -wal or -journal of the copy into the live database (online) all
// exist at once, about three times the database for an online restore
// of a compressed backup.
type Space struct {
	Dir    string      `json:"dir"`
	Needed int64       `json:"needed"`
	Free   int64       `json:"free"`
	Parts  []SpacePart `json:"parts"`
}

// SpacePart is one file the restore will write and its size.
type SpacePart struct {
	What  string `json:"what"`
	Bytes int64  `json:"bytes"`
}

func (s *Space) add(what string, n int64) {
	if n > 0 {
		s.Parts = append(s.Parts, SpacePart{what, n})
		s.Needed += n
	}
}

// freeBytes is what an unprivileged writer may still use in dir, as
// df's "Avail" column says it (root may also use the reserved blocks;
// counting without them leaves the application its headroom).
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// sizeOf is a file's size, 0 if it is missing.
func sizeOf(p string) int64 {
	if fi, err := os.Stat(p); err == nil {
		return fi.Size()
	}
	return 0
}

// spacePlan adds up what the restore writes beside the target. newSize
// is the restored database's size (0 when not known yet); download and
// decompress are the sizes of the downloaded backup (URL/NAME) and of
// its decompressed or decrypted copy; copyNew says the new file is
// written as a copy of the backup (offline, from a backup that is not
// already our decompressed temp file).
func spacePlan(target string, tgt targetState, mode Mode, newSize, download, decompress int64, copyNew bool) Space {
	s := Space{Parts: []SpacePart{}}
	s.add("downloaded backup", download)
	s.add("decompressed backup", decompress)
	if tgt.exists {
		// The backup API copies every committed page, those still in the
		// -wal included: at most the file and its -wal together.
		s.add("safety copy", tgt.fi.Size()+sizeOf(target+"-wal"))
	}
	switch {
	case mode == ModeOnline && tgt.wal:
		// Every page of the new content goes through the -wal (24-byte
		// frame headers) before a checkpoint moves it into the file.
		ps := int64(max(tgt.pageSize, 512))
		s.add("-wal of the copy into the live database", 32+newSize/ps*(ps+24))
		s.add("growth of the database file", newSize-tgt.fi.Size())
	case mode == ModeOnline:
		// The rollback journal keeps each page it overwrites.
		s.add("-journal of the copy into the live database", min(newSize, tgt.fi.Size()))
		s.add("growth of the database file", newSize-tgt.fi.Size())
	default:
		if copyNew {
			s.add("new database file", newSize)
		}
		if tgt.exists {
			// The checkpoint that settles the old database may grow its
			// file by what its -wal holds.
			s.add("checkpoint of the current -wal", sizeOf(target+"-wal"))
		}
	}
	return s
}

// checkSpace fails when the plan does not fit in the target's directory.
// written is what of the plan this run has already written there (the
// download, the decompressed copy): free is counted as it was before.
func checkSpace(s *Space, target string, mode Mode, written int64) error {
	dir := filepath.Dir(target)
	free, err := freeBytes(dir)
	if err != nil {
		return nil // unknown: the writes themselves will say ENOSPC
	}
	free += written
	s.Dir, s.Free = dir, free
	if s.Needed <= free {
		return nil
	}
	var parts []string
	for _, p := range s.Parts {
		parts = append(parts, fmt.Sprintf("%s %s", p.What, mib(p.Bytes)))
	}
	err = fmt.Errorf("restore to %q: not enough free space in %q: the restore writes up to %s there before it frees anything (%s), and %s is free; nothing was changed",
		target, dir, mib(s.Needed), strings.Join(parts, ", "), mib(free))
	more := mib(s.Needed - free)
	qdir := hint.Quote(dir)
	old := hint.Quote(target+SafetySuffix) + "*"
	if mode == ModeOnline {
		return hint.Wrap(err, "free %s in %s (df -h %s; earlier safety copies: ls -l %s), or stop the application first: an offline restore needs no -wal or -journal", more, qdir, qdir, old)
	}
	return hint.Wrap(err, "free %s in %s (df -h %s; earlier safety copies: ls -l %s)", more, qdir, qdir, old)
}

// newSizeOf is the restored database's size as far as it is known
// before the backup is decompressed: the plain file's own size, or the
// manifest's uncompressed size for a compressed or encrypted backup.
func newSizeOf(bk string, packed bool) int64 {
	if !packed {
		return sizeOf(bk)
	}
	if m, err := manifest.Read(bk); err == nil && m.Uncompressed > 0 {
		return m.Uncompressed
	}
	return 0
}

// mib is a size in MiB, as df -h shows it, or bytes when small.
func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
