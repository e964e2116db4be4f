// Package retention finds the backups this tool made for one database in
// a backup directory and decides which of them to keep. It only ever
// considers regular files whose name is exactly
// <db-file>.YYYYMMDD_HHMMSS[-N][.zst|.gz][.age] for a full backup and
// <db-file>.YYYYMMDD_HHMMSS[-N].ltx[.age] for an increment of an
// incremental chain (never symlinks, never files that merely look
// similar), and removes a backup together with its .sha256 and .json
// sidecars. Deciding (Plan, PlanChains) is separate from removing
// (Remove) so the rules can be tested over a simulated year with an
// injected clock. A kept increment keeps every point it needs, up to its
// chain's full (PlanChains), so pruning never breaks a kept chain.
package retention

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"sqlite-backup/internal/sys/fsx"
)

// TimeFormat is the timestamp in a backup's name (local time), as
// backup_database.py wrote it.
const TimeFormat = "20060102_150405"

// SidecarSuffixes are the files written beside a backup, removed with it.
var SidecarSuffixes = []string{".sha256", ".json"}

// Backup is one backup file found in a directory.
type Backup struct {
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	DB          string    `json:"db"` // database file name the backup is of
	Time        time.Time `json:"time"`
	Seq         int       `json:"seq"`                  // 1, or N of a -N same-second suffix
	Compression string    `json:"compression"`          // "none", "zstd" or "gzip"
	Encryption  string    `json:"encryption,omitempty"` // "age" for .age
	// Kind is "increment" for an increment (.ltx) of an incremental
	// chain, else "full" (whether or not a chain starts on it).
	Kind string `json:"kind"`
	Size int64  `json:"size"`
	// ModTime is the backup file's own mtime (not a sidecar's). The name's
	// local time has no UTC offset, so it can misorder backups across a
	// DST fall-back or a TZ change; the mtime tells which was written last.
	ModTime time.Time `json:"-"`
}

// nameRE splits a backup name: db, timestamp, optional -N, optional
// compression suffix or .ltx (an increment: LTX pages are compressed
// already), optional .age. The db part is greedy but must be followed by
// the exact timestamp shape, so "app.db.20260101_000000.bak" never
// matches.
var nameRE = regexp.MustCompile(`^(.+)\.(\d{8}_\d{6})(?:-([2-9]|[1-9]\d{1,2}))?(?:(\.zst|\.gz)|(\.ltx))?(\.age)?$`)

// Kinds of backup (Backup.Kind).
const (
	KindFull      = "full"
	KindIncrement = "increment"
)

// IncrementSuffix marks an increment's name: <db-file>.YYYYMMDD_HHMMSS[-N].ltx[.age].
const IncrementSuffix = ".ltx"

// KindOf says whether name, a backup name, is a full backup or an
// increment ("" if it is no backup name).
func KindOf(name string) string {
	m := nameRE.FindStringSubmatch(name)
	switch {
	case m == nil:
		return ""
	case m[5] != "":
		return KindIncrement
	}
	return KindFull
}

// Parse reports whether name is a backup name, and of which database.
func Parse(name string, loc *time.Location) (db string, t time.Time, seq int, compression string, ok bool) {
	db, t, seq, compression, _, ok = parse(name, loc)
	return
}

func parse(name string, loc *time.Location) (db string, t time.Time, seq int, compression string, encryption string, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return "", time.Time{}, 0, "", "", false
	}
	t, err := time.ParseInLocation(TimeFormat, m[2], loc)
	if err != nil || t.Format(TimeFormat) != m[2] {
		// 20260230_000000 parses to March: not a name we wrote.
		return "", time.Time{}, 0, "", "", false
	}
	seq = 1
	if m[3] != "" {
		seq, _ = strconv.Atoi(m[3])
	}
	compression = "none"
	switch m[4] {
	case ".zst":
		compression = "zstd"
	case ".gz":
		compression = "gzip"
	}
	if m[6] != "" {
		encryption = "age"
	}
	return m[1], t, seq, compression, encryption, true
}

// Find lists the backups of database file name db (a base name such as
// "app.db"; "" for every database) in dir, newest first. Symlinks and
// anything that is not a regular file are skipped: they are not ours.
func Find(dir, db string, loc *time.Location) ([]Backup, error) {
	if loc == nil {
		loc = time.Local
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list backups in %q: %w", dir, fsx.PathErr(err))
	}
	var out []Backup
	for _, e := range entries {
		// ReadDir reports the entry's own type (lstat): a symlink is a
		// symlink here, never the file it points to.
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		d, t, seq, comp, enc, ok := parse(name, loc)
		if !ok || (db != "" && d != db) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Backup{Path: filepath.Join(dir, name), Name: name, DB: d, Time: t, Seq: seq, Compression: comp, Encryption: enc, Kind: KindOf(name), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	SortNewestFirst(out)
	return out, nil
}

// SortNewestFirst orders backups by time, then same-second sequence.
func SortNewestFirst(bs []Backup) {
	sort.SliceStable(bs, func(i, j int) bool {
		if !bs[i].Time.Equal(bs[j].Time) {
			return bs[i].Time.After(bs[j].Time)
		}
		if bs[i].Seq != bs[j].Seq {
			return bs[i].Seq > bs[j].Seq
		}
		return bs[i].Name > bs[j].Name
	})
}

// Policy says which backups to keep. The rules are a union, as in
// restic: a backup is kept if any rule keeps it. The newest backup is
// always kept. A policy with every rule 0 keeps everything.
type Policy struct {
	Last    int // the N newest
	Daily   int // the newest backup of each of the last D days that have one
	Weekly  int // … of each of the last W ISO weeks that have one
	Monthly int // … of each of the last M months that have one
}

// KeepsAll reports whether the policy removes nothing.
func (p Policy) KeepsAll() bool {
	return p.Last <= 0 && p.Daily <= 0 && p.Weekly <= 0 && p.Monthly <= 0
}

func (p Policy) String() string {
	if p.KeepsAll() {
		return "keep all"
	}
	var parts []string
	for _, r := range []struct {
		n    int
		name string
	}{{p.Last, "last"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}} {
		if r.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.n))
		}
	}
	return "keep " + strings.Join(parts, ", ")
}

// Decision is the verdict on one backup.
type Decision struct {
	Backup
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons,omitempty"` // why it is kept
}

// Plan decides for backups of one database (any order). protect names
// backups that must be kept whatever the rules say, with the reason
// (e.g. the last good backup before a shrink warning).
func Plan(backups []Backup, p Policy, protect map[string]string) []Decision {
	bs := append([]Backup(nil), backups...)
	SortNewestFirst(bs)
	ds := make([]Decision, len(bs))
	for i, b := range bs {
		ds[i] = Decision{Backup: b}
	}
	keep := func(i int, why string) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, why)
	}
	for i := range ds {
		if why, ok := protect[ds[i].Path]; ok {
			keep(i, why)
		}
	}
	if p.KeepsAll() {
		for i := range ds {
			keep(i, "keep all")
		}
		return ds
	}
	if len(ds) > 0 {
		keep(0, "newest")
	}
	for i := 0; i < len(ds) && i < p.Last; i++ {
		keep(i, "last")
	}
	buckets := []struct {
		n    int
		name string
		key  func(time.Time) string
	}{
		{p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, r := range buckets {
		if r.n <= 0 {
			continue
		}
		seen := map[string]bool{}
		for i := range ds {
			if len(seen) >= r.n {
				break
			}
			k := r.key(ds[i].Time)
			if seen[k] {
				continue
			}
			// Newest first: the first backup of a bucket is its newest.
			seen[k] = true
			keep(i, r.name+" "+k)
		}
	}
	return ds
}

// Removed is one file Remove deleted.
type Removed struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Remove deletes a backup and its sidecars. It re-checks with Lstat that
// each is still a regular file (a symlink planted since the listing is
// left alone) and returns what it removed. A missing sidecar is fine.
func Remove(b Backup) ([]Removed, error) {
	var out []Removed
	fi, err := os.Lstat(b.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("remove backup %q: %w", b.Path, fsx.PathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	// The backup goes first: a sidecar without its backup is harmless and
	// is cleaned up with nothing else, a backup without its checksum is
	// a backup that can no longer be proven intact.
	if err := os.Remove(b.Path); err != nil {
		return nil, fmt.Errorf("remove backup %q: %w", b.Path, fsx.PathErr(err))
	}
	out = append(out, Removed{b.Path, fi.Size()})
	for _, s := range SidecarSuffixes {
		p := b.Path + s
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(p); err != nil {
			return out, fmt.Errorf("remove %q: %w", p, fsx.PathErr(err))
		}
		out = append(out, Removed{p, fi.Size()})
	}
	return out, nil
}
