package backup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "time/tzdata" // the DST cases need America/New_York on any host

	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
)

// A backup file on disk for the prune tests: its name (local time, no
// offset) and the instant it was really written (its mtime).
type diskBackup struct {
	name    string
	written time.Time
	// sidecars, if set, get .sha256 and .json (a manifest of this
	// source) with this mtime, to show only the backup's own mtime counts.
	sidecars time.Time
}

func writeBackups(t *testing.T, dir, src string, bs []diskBackup) {
	t.Helper()
	set := func(p string, data []byte, mt time.Time) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bs {
		p := filepath.Join(dir, b.name)
		set(p, []byte("backup"), b.written)
		if !b.sidecars.IsZero() {
			set(p+".sha256", []byte("0  "+b.name+"\n"), b.sidecars)
			set(p+".json", []byte(`{"source":"`+src+`"}`), b.sidecars)
		}
	}
}

// The standalone prune never removes the backup written last, even when
// its name sorts older (DST fall-back, runs under different TZ); where
// names and mtimes agree it keeps exactly what it kept before.
func TestPruneKeepsNewestWritten(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// 2 November 2025, New York: 02:00 EDT falls back to 01:00 EST.
	edt := func(h, m int) time.Time { return time.Date(2025, 11, 2, h, m, 0, 0, time.FixedZone("EDT", -4*3600)) }
	est := func(h, m int) time.Time { return time.Date(2025, 11, 2, h, m, 0, 0, time.FixedZone("EST", -5*3600)) }
	utc := func(d, h, m int) time.Time { return time.Date(2025, 6, d, h, m, 0, 0, time.UTC) }

	cases := []struct {
		name    string
		backups []diskBackup
		policy  retention.Policy
		dryRun  bool
		// kept backups (names) with the reason each must carry, and the
		// files that must be gone afterwards
		kept    map[string]string
		removed []string
	}{
		{
			name: "DST second pass sorts older by name",
			backups: []diskBackup{
				{name: "app.db.20251102_003000", written: edt(0, 30)},
				{name: "app.db.20251102_015000", written: edt(1, 50)}, // first pass
				{name: "app.db.20251102_011000", written: est(1, 10)}, // second pass: last written
			},
			policy:  retention.Policy{Last: 1},
			kept:    map[string]string{"app.db.20251102_015000": "newest", "app.db.20251102_011000": NewestWritten},
			removed: []string{"app.db.20251102_003000"},
		},
		{
			name: "DST, dry run lists the same and removes nothing",
			backups: []diskBackup{
				{name: "app.db.20251102_003000", written: edt(0, 30)},
				{name: "app.db.20251102_015000", written: edt(1, 50)},
				{name: "app.db.20251102_011000", written: est(1, 10)},
			},
			policy: retention.Policy{Last: 1},
			dryRun: true,
			kept:   map[string]string{"app.db.20251102_015000": "newest", "app.db.20251102_011000": NewestWritten},
		},
		{
			// A UTC container's cron and a manual run on a New York host:
			// 22:30 EDT on 1 June is 02:30 UTC on 2 June, after the cron.
			name: "names from a UTC cron and a local manual run",
			backups: []diskBackup{
				{name: "app.db.20250601_020000", written: utc(1, 2, 0)},
				{name: "app.db.20250602_020000", written: utc(2, 2, 0)},
				{name: "app.db.20250601_223000", written: utc(2, 2, 30)},
			},
			policy:  retention.Policy{Last: 1},
			kept:    map[string]string{"app.db.20250602_020000": "newest", "app.db.20250601_223000": NewestWritten},
			removed: []string{"app.db.20250601_020000"},
		},
		{
			// Only the compressed backup's own mtime counts: the sidecars
			// of an older one were rewritten later (e.g. a re-verify).
			name: "compressed backup, sidecars touched later",
			backups: []diskBackup{
				{name: "app.db.20251102_003000", written: edt(0, 30), sidecars: est(3, 0)},
				{name: "app.db.20251102_015000.zst", written: edt(1, 50), sidecars: edt(1, 51)},
				{name: "app.db.20251102_011000.zst", written: est(1, 10), sidecars: est(1, 11)},
			},
			policy: retention.Policy{Last: 1},
			kept:   map[string]string{"app.db.20251102_015000.zst": "newest", "app.db.20251102_011000.zst": NewestWritten},
			removed: []string{
				"app.db.20251102_003000", "app.db.20251102_003000.sha256", "app.db.20251102_003000.json",
			},
		},
		{
			name: "names and mtimes agree: nothing extra kept",
			backups: []diskBackup{
				{name: "app.db.20251102_003000", written: edt(0, 30)},
				{name: "app.db.20251102_015000", written: edt(1, 50)},
				{name: "app.db.20251102_011000", written: edt(1, 10)},
			},
			policy:  retention.Policy{Last: 1},
			kept:    map[string]string{"app.db.20251102_015000": "newest"},
			removed: []string{"app.db.20251102_003000", "app.db.20251102_011000"},
		},
		{
			// Same mtime (a copy with coarse timestamps): the newest by
			// name stays the only one kept, as before.
			name: "mtimes tie",
			backups: []diskBackup{
				{name: "app.db.20251102_003000", written: est(3, 0)},
				{name: "app.db.20251102_015000", written: est(3, 0)},
			},
			policy:  retention.Policy{Last: 1},
			kept:    map[string]string{"app.db.20251102_015000": "newest"},
			removed: []string{"app.db.20251102_003000"},
		},
		{
			// Prune before the first backup (from cron, or a second
			// --source): nothing to keep, nothing to look at.
			name:   "no backups of this database",
			policy: retention.Policy{Last: 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(t.TempDir(), "app.db")
			writeBackups(t, dir, src, c.backups)
			rep, err := Prune(context.Background(), PruneOptions{Dir: dir, Source: src, Policy: c.policy, DryRun: c.dryRun, Loc: ny})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, d := range rep.Kept {
				got[d.Name] = d.Reasons
			}
			if len(got) != len(c.kept) {
				t.Errorf("kept %v, want %v", got, c.kept)
			}
			for name, why := range c.kept {
				if !slices.Contains(got[name], why) {
					t.Errorf("%s: kept for %q, want %q among them", name, got[name], why)
				}
				if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
					t.Errorf("kept %s is gone: %v", name, err)
				}
			}
			for _, d := range rep.Remove {
				if _, ok := c.kept[d.Name]; ok {
					t.Errorf("%s planned for removal, want it kept", d.Name)
				}
			}
			if len(rep.Kept)+len(rep.Remove) != len(c.backups) {
				t.Errorf("kept %d + remove %d, want %d backups", len(rep.Kept), len(rep.Remove), len(c.backups))
			}
			for _, name := range c.removed {
				if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
					t.Errorf("%s still there", name)
				}
			}
			if c.dryRun {
				if len(rep.Removed) != 0 {
					t.Errorf("dry run removed %v", rep.Removed)
				}
				for _, b := range c.backups {
					if _, err := os.Lstat(filepath.Join(dir, b.name)); err != nil {
						t.Errorf("dry run: %s gone", b.name)
					}
				}
			}
		})
	}
}

// After a backup the file just made is kept whatever its name sorts like,
// so the DST second pass is safe there without looking at mtimes.
func TestRunKeepsJustMadeInDSTSecondPass(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 10)
	first := time.Date(2025, 11, 2, 5, 50, 0, 0, time.UTC).In(ny)  // 01:50 EDT
	second := time.Date(2025, 11, 2, 6, 10, 0, 0, time.UTC).In(ny) // 01:10 EST
	for _, now := range []time.Time{first, second} {
		rep, err := Run(context.Background(), Options{
			Backup: snapshot.Options{Source: src, Dir: dir, Now: func() time.Time { return now }},
			Policy: retention.Policy{Last: 1},
			Loc:    ny,
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "app.db."+now.Format(retention.TimeFormat)); rep.Path != want {
			t.Fatalf("made %s, want %s", rep.Path, want)
		}
	}
	want := []string{"app.db.20251102_011000", "app.db.20251102_015000"}
	if got := backupNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
}
