package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/size"
)

// MinFree is the free space a new backup must leave on the backup
// directory's file system: Bytes, or Percent of the file system's size.
// The zero value sets no floor.
type MinFree struct {
	Bytes   int64
	Percent float64
}

// DefaultMinFree is --min-free's default: a disk that holds the backups
// (and often the database) is never filled past 95% by them.
const DefaultMinFree = "5%"

// ParseMinFree reads --min-free: "0" (no floor), a percentage of the
// file system ("5%") or a size in bytes with an optional binary unit
// ("500M", "2G", "1T"; K, M, G, T are powers of 1024, an "iB" or "B"
// after them is allowed).
func ParseMinFree(s string) (MinFree, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 100 {
			return MinFree{}, fmt.Errorf("--min-free %q: give a percentage from 0 to 99, a size like 2G, or 0 for no floor", s)
		}
		return MinFree{Percent: v}, nil
	}
	u := strings.ToUpper(t)
	u = strings.TrimSuffix(strings.TrimSuffix(u, "B"), "I")
	mult := int64(1)
	if n := len(u); n > 0 {
		if i := strings.IndexByte("KMGT", u[n-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			u = u[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(u), 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<62 {
		return MinFree{}, fmt.Errorf("--min-free %q: give a percentage like 5%%, a size like 2G, or 0 for no floor", s)
	}
	return MinFree{Bytes: int64(v * float64(mult))}, nil
}

func (m MinFree) String() string {
	if m.Percent > 0 {
		return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	}
	return size.Human(m.Bytes)
}

// checkFree refuses, before anything is written, a backup that would
// leave less than opts.MinFree free where it is written. What a backup
// may take at most is the source with its -wal, twice when it is
// compressed or encrypted (the verified copy and its transformed twin
// are on disk together for a moment).
func checkFree(opts Options) error {
	mf := opts.MinFree
	if mf.Bytes <= 0 && mf.Percent <= 0 {
		return nil
	}
	dir := opts.Backup.Dir
	if opts.Backup.Path != "" {
		dir = filepath.Dir(opts.Backup.Path)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	// The directory may not exist yet (a run creates it): judge the
	// file system it will be made on.
	at := dir
	for {
		if _, err := os.Stat(at); err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(at) == at {
			break
		}
		at = filepath.Dir(at)
	}
	free, total, ok := diskSpace(at)
	if !ok {
		return nil // no statfs here: nothing to judge by
	}
	var need int64
	for _, p := range []string{opts.Backup.Source, opts.Backup.Source + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			need += fi.Size()
		}
	}
	if opts.Backup.Compress != "" && opts.Backup.Compress != "none" || len(opts.Backup.Recipients) > 0 {
		need *= 2
	}
	floor := mf.Bytes
	if mf.Percent > 0 {
		floor = int64(float64(total) * mf.Percent / 100)
	}
	if free-need >= floor {
		return nil
	}
	src := opts.Backup.Source
	return hint.Wrap(fmt.Errorf("backup of %q into %q: not enough free space: %s free, the backup may take up to %s and --min-free %s keeps %s free; nothing was written",
		src, dir, size.Human(free), size.Human(need), mf, size.Human(floor)),
		"make room in %s (e.g. fewer backups kept: sqlite-backup prune --source %s --backup-dir %s --keep 3), or lower the floor: --min-free 1G (0: none)",
		hint.Quote(dir), hint.Quote(src), hint.Quote(dir))
}
