package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/sys/fsx"
)

// TimeFormat is the timestamp in a backup's name, as backup_database.py
// wrote it: <db-file>.YYYYMMDD_HHMMSS.
const TimeFormat = retention.TimeFormat

// TempPrefix starts the name of every temp file this tool writes, so
// that leftovers of a killed run can be recognised as ours.
const TempPrefix = fsx.TempPrefix

// checkSource makes sure src is an existing regular SQLite file before
// SQLite sees it: SQLite would create a missing file, and would take an
// empty one for an empty database. It returns src made absolute, and the
// file it names with every symbolic link resolved: SQLite resolves them
// and keeps its -wal and -shm beside that file, so every file the backup
// reads or judges (the database, its sidecars, their sizes and times)
// must be named from it, never from the path as given.
func checkSource(src string) (given, real string, _ sqlitefile.Header, _ error) {
	var h sqlitefile.Header
	if src == "" {
		return "", "", h, hint.Wrap(errors.New("no source database given"), "sqlite-backup --source /path/to/app.db")
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", "", h, fmt.Errorf("source %q: %w", src, err)
	}
	given = abs
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", h, fmt.Errorf("open source %q: %w", src, fsx.PathErr(err))
	}
	// A dangling link falls through to the "no such file" below.
	if db, ok := sqlitefile.SidecarOf(abs); ok {
		if _, err := os.Stat(db); err == nil {
			return "", "", h, hint.Wrap(fmt.Errorf("source %q is SQLite's %s file, not a database", src, abs[len(db):]),
				"back up the database itself: sqlite-backup --source %s", hint.Quote(db))
		}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", h, hint.Wrap(fmt.Errorf("open source %q: no such file", src), "check the path: sqlite-backup --source /path/to/app.db")
		}
		return "", "", h, fmt.Errorf("open source %q: %w", src, fsx.PathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return "", "", h, fmt.Errorf("open source %q: not a regular file", src)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", "", h, fmt.Errorf("open source %q: %w", src, fsx.PathErr(err))
	}
	defer f.Close()
	h, err = sqlitefile.ReadHeader(f)
	if err != nil {
		if fi.Size() == 0 {
			return "", "", h, fmt.Errorf("open source %q: empty file (0 bytes), not a SQLite database", src)
		}
		return "", "", h, fmt.Errorf("open source %q: %w", src, err)
	}
	// Its size is judged later, under SQLite's lock (truncatedUnderLock):
	// read here, a writer could be caught extending it.
	return given, abs, h, nil
}

type destination struct {
	dir      string
	explicit string // --backup FILE, absolute; empty for a named backup in dir
}

// planDestination checks where the backup of src goes. given is the
// source as the user named it (named backups take its name), src the
// file SQLite opens (whose sidecars the backup must not land on).
func planDestination(given, src string, opts Options) (destination, error) {
	if opts.Path != "" {
		p, err := filepath.Abs(opts.Path)
		if err != nil {
			return destination{}, fmt.Errorf("backup %q: %w", opts.Path, err)
		}
		for _, s := range append([]string{""}, sqlitefile.Sidecars...) {
			if fsx.SameFile(p, src+s) {
				return destination{}, hint.Wrap(fmt.Errorf("backup %q: that is the source database%s itself", opts.Path, s),
					"write the backup elsewhere: sqlite-backup --source %s --backup %s", hint.Quote(src), hint.Quote(src+".bak"))
			}
		}
		if _, err := os.Lstat(p); err == nil {
			return destination{}, hint.Wrap(fmt.Errorf("backup %q: file exists; refusing to overwrite it", opts.Path),
				"choose a new name, or use --backup-dir for timestamped names")
		}
		dir := filepath.Dir(p)
		if err := checkDir(dir, false); err != nil {
			return destination{}, err
		}
		if err := checkNameLength(given, dir, filepath.Base(p)+".zst"); err != nil {
			return destination{}, err
		}
		return destination{dir: dir, explicit: p}, nil
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return destination{}, fmt.Errorf("backup dir %q: %w", opts.Dir, err)
	}
	longest := longestPublished(given)
	if len(opts.Recipients) > 0 {
		longest += ".age"
	}
	if err := checkNameLength(given, dir, longest); err != nil {
		return destination{}, err
	}
	if err := checkDir(dir, true); err != nil {
		return destination{}, err
	}
	return destination{dir: dir}, nil
}

// checkDir makes sure dir is a directory, creating it (0700: backups hold
// the whole database) when create is set.
func checkDir(dir string, create bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create backup dir %q: %w", dir, fsx.PathErr(err))
		}
		// MkdirAll is subject to the umask; a backup dir is private.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("create backup dir %q: %w", dir, fsx.PathErr(err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup dir %q: %w", dir, fsx.PathErr(err))
	}
	if !fi.IsDir() {
		return hint.Wrap(fmt.Errorf("backup dir %q: not a directory", dir), "point --backup-dir at a directory: sqlite-backup --backup-dir /backup")
	}
	return nil
}

// createTemp creates an empty, private (0600) temp file in dir, named so
// that backup and restore runs clean up each other's leftovers.
func createTemp(dir, base string) (string, error) {
	p, err := fsx.CreateEmptyTemp(dir, base, 0o600)
	if err != nil {
		return "", fmt.Errorf("create backup in %q: %w", dir, err)
	}
	return p, nil
}

// RemoveStaleTemps removes temp files that runs killed before they could
// clean up left in dir, and returns their names. Call it only while
// holding the directory's lock: then no live run owns any of them. The
// private directories of runs that work without the lock (a download,
// a decrypted copy: fsx.HeldDir) go only when their run is dead.
func RemoveStaleTemps(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	removed := fsx.RemoveDead(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix) || e.IsDir() {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// removeTemp removes a temp file and whatever SQLite left beside it.
func removeTemp(tmp string) {
	os.Remove(tmp)
	for _, s := range sqlitefile.Sidecars {
		os.Remove(tmp + s)
	}
}

// publish gives the verified temp file its final name without ever
// replacing an existing file, then makes the rename durable.
func publish(tmp string, dst destination, now time.Time, suffix string) (string, error) {
	if dst.explicit != "" {
		if err := fsx.RenameNoReplace(tmp, dst.explicit); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return "", hint.Wrap(fmt.Errorf("backup %q: file exists; refusing to overwrite it", dst.explicit), "choose a new name")
			}
			return "", fmt.Errorf("rename backup to %q: %w", dst.explicit, fsx.PathErr(err))
		}
		return dst.explicit, durable(dst.dir)
	}
	base := strings.TrimPrefix(filepath.Base(tmp), TempPrefix)
	base = base[:strings.LastIndexByte(base, '-')] + "." + now.Format(TimeFormat)
	// Two runs in the same second get -2, -3, … rather than colliding,
	// always above any number already used that second (whatever the
	// compression suffix), so a pruned name is never reused and the
	// newest backup always sorts newest.
	for i := nextSeq(dst.dir, base); i < 1000; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		name += suffix
		final := filepath.Join(dst.dir, name)
		err := fsx.RenameNoReplace(tmp, final)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("rename backup to %q: %w", final, fsx.PathErr(err))
		}
		return final, durable(dst.dir)
	}
	return "", fmt.Errorf("rename backup in %q: too many backups named %s", dst.dir, base)
}

func durable(dir string) error {
	if err := fsx.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync backup dir %q: %w", dir, fsx.PathErr(err))
	}
	return nil
}

// NextName is the name a backup of the database file db taken at t
// gets in dir, with suffix (".ltx" for an increment, ".age" …): the
// first same-second number above every one in use, as publish names a
// full backup, so that an increment taken in its parent's second sorts
// after it. The caller holds dir's lock, so the name stays free.
func NextName(dir, db string, t time.Time, suffix string) (string, error) {
	base := db + "." + t.Format(TimeFormat)
	i := nextSeq(dir, base)
	if i >= 1000 {
		return "", fmt.Errorf("name backup in %q: too many backups named %s", dir, base)
	}
	name := base
	if i > 1 {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return filepath.Join(dir, name+suffix), nil
}

// nextSeq is the first same-second sequence number above every one in
// use for base (a backup name without -N and compression suffix).
func nextSeq(dir, base string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 1
	}
	next := 1
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok {
			continue
		}
		for _, s := range []string{".sha256", ".json", ".age", ".zst", ".gz", ".ltx"} {
			rest = strings.TrimSuffix(rest, s)
		}
		n := 1
		if rest != "" {
			v, ok := strings.CutPrefix(rest, "-")
			if !ok {
				continue
			}
			var err error
			if n, err = strconv.Atoi(v); err != nil {
				continue
			}
		}
		if n >= next {
			next = n + 1
		}
	}
	return next
}
