package backup

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
)

// Point is a backup picked by the time it was taken.
type Point struct {
	retention.Backup
	// Taken is when the backup was taken: its manifest's start, else the
	// time in its name.
	Taken time.Time `json:"taken"`
}

// ErrNoPoint is wrapped by At's error when no backup was taken at or
// before the time asked for.
var ErrNoPoint = errors.New("no backup at or before that time")

// At finds the newest backup of the database source in dir that was
// taken at or before t (point-in-time restore, at the granularity of the
// backups): full backups and increments alike, by the instant their
// manifest says they were taken, else the local time in their name.
// Backups whose manifest names another source are left out.
func At(dir, source string, t time.Time, loc *time.Location) (*Point, error) {
	if loc == nil {
		loc = time.Local
	}
	src, err := filepath.Abs(source)
	if err != nil {
		return nil, err
	}
	bs, err := retention.Find(dir, filepath.Base(src), loc)
	if err != nil {
		return nil, err
	}
	var best *Point
	var oldest *Point
	for _, b := range bs {
		taken := b.Time
		if m, err := manifest.Read(b.Path); err == nil {
			if m.Source != "" && m.Source != src {
				continue
			}
			if !m.Started.IsZero() {
				taken = m.Started
			}
		}
		p := &Point{Backup: b, Taken: taken}
		if oldest == nil || taken.Before(oldest.Taken) {
			oldest = p
		}
		if taken.After(t) {
			continue
		}
		if best == nil || taken.After(best.Taken) {
			best = p
		}
	}
	if best != nil {
		return best, nil
	}
	when := t.In(loc).Format("2006-01-02 15:04:05 MST")
	if oldest == nil {
		return nil, hint.Wrap(fmt.Errorf("%w: no backup of %s in %q", ErrNoPoint, src, dir),
			"list the backups: sqlite-backup list --backup-dir %s", hint.Quote(dir))
	}
	return nil, hint.Wrap(fmt.Errorf("%w: the oldest backup of %s in %q, %s, was taken %s, after %s", ErrNoPoint, src, dir, oldest.Name, oldest.Taken.In(loc).Format("2006-01-02 15:04:05 MST"), when),
		"pick a later time, or list the backups: sqlite-backup list --backup-dir %s --source %s", hint.Quote(dir), hint.Quote(src))
}
