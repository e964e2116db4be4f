package backup

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
)

func execDB(t *testing.T, path, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

// TestIncrementalRuns: runs with Incremental start a chain with a full,
// add increments named .ltx with sidecars whose manifests name parent
// and base, take a full when the chain is FullEvery long and when the
// page index is lost, check the head when CheckEvery says so, and every
// point materializes to a database with the rows the source had then.
// Pruning keeps every point a kept one needs.
func TestIncrementalRuns(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 20000)
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.Local)
	rows := map[string]int{}
	run := func(check time.Duration, policy retention.Policy) *Report {
		t.Helper()
		at = at.Add(time.Hour)
		now := at
		rep, err := Run(context.Background(), Options{
			Backup:      snapshot.Options{Source: src, Dir: dir, Now: func() time.Time { return now }},
			Policy:      policy,
			Incremental: &Incremental{Policy: chain.Policy{FullEvery: 3}, CheckEvery: check},
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		db, _ := sql.Open("sqlite", src)
		db.QueryRow("SELECT count(*) FROM t").Scan(&n)
		db.Close()
		rows[filepath.Base(rep.Path)] = n
		return rep
	}
	var kinds []string
	for i := range 6 {
		execDB(t, src, "UPDATE t SET v = hex(randomblob(20)) WHERE id % 2000 = "+string(rune('0'+i))+"; INSERT INTO t(v) VALUES ('x')")
		rep := run(2*time.Hour, retention.Policy{})
		kinds = append(kinds, rep.Chain.Kind)
		t.Logf("run %d: %s %s", i, rep.Path, rep.FullReason)
		if rep.Chain.Kind == manifest.KindIncrement {
			if !strings.HasSuffix(rep.Path, ".ltx") || rep.Chain.Parent == "" || rep.Chain.Changed == 0 {
				t.Fatalf("run %d: %s %+v", i, rep.Path, rep.Chain)
			}
			// Checked when the chain's last check is 2 hours old.
			if (rep.Chain.Seq == 2) != (rep.Chain.Checked != "") {
				t.Errorf("run %d: increment %d checked %q", i, rep.Chain.Seq, rep.Chain.Checked)
			}
		} else if rep.FullReason == "" {
			t.Errorf("run %d: a full without a reason", i)
		}
		for _, s := range []string{manifest.SHA256Suffix, manifest.JSONSuffix} {
			if _, err := os.Stat(rep.Path + s); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := "full increment increment increment full increment"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("kinds %s, want %s", got, want)
	}
	// A lost index: a full, and it says why.
	os.Remove(pageindex.Path(dir, "app.db"))
	execDB(t, src, "INSERT INTO t(v) VALUES ('y')")
	if rep := run(time.Hour, retention.Policy{}); rep.Chain.Kind != manifest.KindFull || !strings.Contains(rep.FullReason, "index") {
		t.Fatalf("after losing the index: %s, %q", rep.Chain.Kind, rep.FullReason)
	}
	execDB(t, src, "INSERT INTO t(v) VALUES ('z')")
	run(time.Hour, retention.Policy{})

	// Every point restores to what the source held then.
	bs, err := retention.Find(dir, "app.db", time.Local)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		op, err := chain.Open(context.Background(), b.Path, chain.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "m.db")
		if _, err := op.Materialize(context.Background(), chain.MaterializeOptions{Path: out}); err != nil {
			t.Fatal(err)
		}
		op.Release()
		var n int
		db, _ := sql.Open("sqlite", out)
		db.QueryRow("SELECT count(*) FROM t").Scan(&n)
		db.Close()
		if n != rows[b.Name] {
			t.Errorf("%s: %d rows, the source had %d", b.Name, n, rows[b.Name])
		}
	}

	// Keep the last 2: the newest increment keeps its full; the first
	// chain goes whole.
	run(time.Hour, retention.Policy{Last: 2})
	left := backupNames(t, dir)
	if len(left) != 3 || strings.HasSuffix(left[0], ".ltx") {
		t.Fatalf("after --keep 2: %q", left)
	}
	for _, n := range left {
		op, err := chain.Open(context.Background(), filepath.Join(dir, n), chain.OpenOptions{})
		if err != nil {
			t.Fatalf("%s after pruning: %v", n, err)
		}
		op.Release()
	}
}

// TestOrphanSidecarsRemoved: the sidecars of an increment that never got
// its name (a run killed between the two) are removed by the next run
// under the lock; any other sidecar without its file is left alone.
func TestOrphanSidecarsRemoved(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 100)
	orphans := []string{"app.db.20260301_010000.ltx.json", "app.db.20260301_010000.ltx.sha256", "app.db.20260301_010000-2.ltx.age.json"}
	kept := []string{"app.db.20260301_010000.json", "other.db.20260301_010000.ltx.json", "app.db.20260301_010000.ltx.bak.json"}
	for _, n := range append(append([]string{}, orphans...), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Run(context.Background(), Options{Backup: snapshot.Options{Source: src, Dir: dir}, Incremental: &Incremental{}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range orphans {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s is still there", n)
		}
	}
	for _, n := range kept {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}
