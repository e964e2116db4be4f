package backup

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/lock"

	_ "modernc.org/sqlite"
)

func makeDB(t testing.TB, path string, rows int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) INSERT INTO t(v) SELECT hex(randomblob(20)) FROM n", rows); err != nil {
		t.Fatal(err)
	}
}

func backupNames(t *testing.T, dir string) []string {
	t.Helper()
	bs, err := retention.Find(dir, "", time.Local)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	slices.Sort(out)
	return out
}

// 45 daily runs through the whole lifecycle with an injected clock end
// with exactly the backups the rules name (worked out by hand).
func TestDailyRunsInjectedClock(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 50)
	day := time.Date(2025, 3, 1, 2, 0, 0, 0, time.Local)
	for i := range 45 {
		now := day.AddDate(0, 0, i)
		_, err := Run(context.Background(), Options{
			Backup: snapshot.Options{Source: src, Dir: dir, Now: func() time.Time { return now }},
			Policy: retention.Policy{Last: 2, Weekly: 3},
		})
		if err != nil {
			t.Fatalf("day %d: %v", i, err)
		}
	}
	// Last day: Monday 14 April 2025. Last 2: 14 and 13 April. Weekly 3:
	// ISO week 16 (14 Apr), week 15 (Sunday 13 Apr), week 14 (Sunday 6 Apr).
	want := []string{"app.db.20250406_020000", "app.db.20250413_020000", "app.db.20250414_020000"}
	if got := backupNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
	// list: newest first, with the manifest's row count; --verify checks
	// each (sha256 and integrity_check).
	es, err := List(context.Background(), ListOptions{Dir: dir, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range es {
		listed = append(listed, e.Name)
		if e.Rows == nil || *e.Rows != 50 || e.SHA256 != "ok" || e.Verify == nil || !e.Verify.OK || e.VerifiedAt == nil {
			t.Errorf("list entry %+v", e)
		}
	}
	if !slices.Equal(listed, []string{want[2], want[1], want[0]}) {
		t.Errorf("list order %q", listed)
	}
	// Sidecars went with their backups.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3*3+1 { // backups, .sha256, .json, lock file
		var n []string
		for _, e := range entries {
			n = append(n, e.Name())
		}
		t.Errorf("dir holds %q", n)
	}
}

// Two runs at the same instant on the same directory: the second waits
// for the lock, both publish distinct, verified backups whose sidecars
// describe their own file.
func TestConcurrentRunsDoNotCollide(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 2000)
	now := time.Date(2025, 5, 5, 5, 5, 5, 0, time.Local)
	var wg sync.WaitGroup
	reps := make([]*Report, 4)
	errs := make([]error, 4)
	for i := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = Run(context.Background(), Options{
				Backup: snapshot.Options{Source: src, Dir: dir, LockTimeout: time.Minute, Now: func() time.Time { return now }},
				Policy: retention.Policy{Last: 10},
			})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, r := range reps {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if seen[r.Path] {
			t.Fatalf("two runs published %s", r.Path)
		}
		seen[r.Path] = true
		sum, err := manifest.FileSHA256(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := manifest.ReadSHA256(r.Path)
		if err != nil || want != sum {
			t.Errorf("%s: sidecar %q (%v), file %s", r.Path, want, err, sum)
		}
		m, err := manifest.Read(r.Path)
		if err != nil || m.Backup != filepath.Base(r.Path) || m.SHA256 != sum {
			t.Errorf("%s: manifest %+v (%v)", r.Path, m, err)
		}
	}
	want := []string{"app.db.20250505_050505", "app.db.20250505_050505-2", "app.db.20250505_050505-3", "app.db.20250505_050505-4"}
	if got := backupNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// While another run holds the directory, backup and prune fail at once
// (lock timeout 0) and touch nothing.
func TestLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 10)
	if _, err := Run(context.Background(), Options{Backup: snapshot.Options{Source: src, Dir: dir}}); err != nil {
		t.Fatal(err)
	}
	before := backupNames(t, dir)
	lk, err := lock.Acquire(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	if _, err := Run(context.Background(), Options{Backup: snapshot.Options{Source: src, Dir: dir}}); !errors.Is(err, lock.ErrBusy) {
		t.Errorf("backup while locked: %v, want ErrBusy", err)
	}
	if _, err := Prune(context.Background(), PruneOptions{Dir: dir, Source: src, Policy: retention.Policy{Last: 1}}); !errors.Is(err, lock.ErrBusy) {
		t.Errorf("prune while locked: %v, want ErrBusy", err)
	}
	if got := backupNames(t, dir); !slices.Equal(got, before) {
		t.Errorf("backups changed while locked: %q -> %q", before, got)
	}
}

// Backups with the same file name whose manifest names another database
// are never pruned.
func TestPruneLeavesOtherDatabases(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(t.TempDir(), "app.db")
	b := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, a, 10)
	makeDB(t, b, 10)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.Local)
	for i, src := range []string{b, b, a, a, a} {
		now := t0.Add(time.Duration(i) * time.Hour)
		if _, err := Run(context.Background(), Options{Backup: snapshot.Options{Source: src, Dir: dir, Now: func() time.Time { return now }}}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Prune(context.Background(), PruneOptions{Dir: dir, Source: a, Policy: retention.Policy{Last: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Foreign) != 2 || len(rep.Remove) != 2 || len(rep.Kept) != 1 {
		t.Errorf("foreign %d, remove %d, kept %d; want 2, 2, 1", len(rep.Foreign), len(rep.Remove), len(rep.Kept))
	}
	want := []string{"app.db.20250101_000000", "app.db.20250101_010000", "app.db.20250101_040000"}
	if got := backupNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestShrunk(t *testing.T) {
	before := &manifest.Content{Tables: []manifest.Table{{Name: "a", Rows: 100}, {Name: "b", Rows: 100}, {Name: "c", Rows: 10}, {Name: "gone", Rows: 3}, {Name: "empty", Rows: 0}}}
	after := &manifest.Content{Tables: []manifest.Table{{Name: "a", Rows: 50}, {Name: "b", Rows: 49}, {Name: "c", Rows: 100}, {Name: "empty", Rows: 0}}}
	got := Shrunk(before, after, 50)
	var names []string
	for _, s := range got {
		names = append(names, s.Table)
	}
	if !slices.Equal(names, []string{"b", "gone"}) {
		t.Errorf("shrunk %v, want b and gone", got)
	}
}
