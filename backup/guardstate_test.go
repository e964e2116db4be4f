package backup

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
)

// Nightly encrypted runs with --keep 1 and no identity on the host:
// the guard compares with the counts the directory's private state
// recorded for the previous backup, so pruning runs, and a mass deletion
// still stops it. A state that does not describe exactly the previous
// file, or that is not private, is not used: the guard says it did not
// compare and nothing is pruned, as without the state.
func TestEncryptedKeepPrunesWithoutKey(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "app.db")
	makeDB(t, src, 100)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 1, 2, 0, 0, 0, time.Local)
	runs := 0
	run := func(deep bool, rcpts ...age.Recipient) *Report {
		t.Helper()
		now := day.AddDate(0, 0, runs)
		runs++
		rep, err := Run(context.Background(), Options{
			Backup:      snapshot.Options{Source: src, Dir: dir, Recipients: rcpts, Now: func() time.Time { return now }},
			Policy:      retention.Policy{Last: 1},
			ShrinkGuard: 50,
			Deep:        deep,
		})
		if err != nil {
			t.Fatalf("run %d: %v", runs, err)
		}
		return rep
	}
	statePath := filepath.Join(dir, GuardStateName)
	readState := func() guardState {
		t.Helper()
		fi, err := os.Lstat(statePath)
		if err != nil {
			t.Fatalf("state: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("state mode %04o, want 0600", fi.Mode().Perm())
		}
		var st guardState
		b, _ := os.ReadFile(statePath)
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	names := func() []string { return backupNames(t, dir) }
	r := id.Recipient()

	first := run(true, r)
	st := readState()
	e := st.Databases[src]
	if e == nil || e.Backup != filepath.Base(first.Path) || e.SHA256 != first.SHA256 || e.Size != first.Size ||
		len(e.Tables) != 1 || e.Tables[0].Name != "t" || e.Tables[0].Rows != 100 || e.Tables[0].SHA256 != "" {
		t.Fatalf("state after the first run: %+v", e)
	}

	// The default nightly job: prunes, having compared.
	second := run(false, r)
	if second.GuardNote != "" || second.Skipped != "" || second.Compared != filepath.Base(first.Path) {
		t.Fatalf("second run: note %q, skipped %q, compared %q; want compared with %s and pruned", second.GuardNote, second.Skipped, second.Compared, first.Path)
	}
	if got := names(); !slices.Equal(got, []string{filepath.Base(second.Path)}) {
		t.Fatalf("after --keep 1: %q", got)
	}

	// A mass deletion: the guard fires from the recorded counts.
	db, err := sql.Open("sqlite", src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM t WHERE id > 10"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	third := run(false, r)
	if third.Skipped != SkipShrink || len(third.Shrink) != 1 || third.Shrink[0].Before != 100 || third.Shrink[0].After != 10 {
		t.Fatalf("after deleting 90%% of t: skipped %q, shrink %+v", third.Skipped, third.Shrink)
	}
	if len(names()) != 2 {
		t.Fatalf("the shrink pruned: %q", names())
	}

	// A state that names the right file with another hash, or that
	// others may write, is not trusted: no comparison, no prune; the
	// run records its own backup, and the next run compares again.
	st = readState()
	st.Databases[src].SHA256 = strings.Repeat("0", 64)
	b, _ := json.Marshal(st)
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fourth := run(false, r)
	if fourth.Skipped != SkipGuardBlind || !strings.Contains(fourth.GuardNote, "has no record of them") || !strings.Contains(fourth.GuardNote, "the next run compares") {
		t.Fatalf("mismatched state: skipped %q, note %q", fourth.Skipped, fourth.GuardNote)
	}
	if err := os.Chmod(statePath, 0o644); err != nil {
		t.Fatal(err)
	}
	fifth := run(false, r)
	if fifth.Skipped != SkipGuardBlind {
		t.Fatalf("state readable by others was used: skipped %q, compared %q", fifth.Skipped, fifth.Compared)
	}
	sixth := run(false, r)
	if sixth.Skipped != "" || sixth.Compared != filepath.Base(fifth.Path) || len(names()) != 3 {
		t.Fatalf("after the state was rewritten: skipped %q, compared %q, backups %q", sixth.Skipped, sixth.Compared, names())
	}

	// A plaintext backup has its counts in its manifest: the entry goes.
	run(false)
	if _, err := os.Lstat(statePath); !os.IsNotExist(err) {
		t.Fatalf("state left after a plaintext backup: %v", err)
	}
	// None of this is a backup to retention, list or remote sync.
	if bs, _ := retention.Find(dir, "", time.Local); slices.ContainsFunc(bs, func(b retention.Backup) bool { return strings.HasPrefix(b.Name, ".") }) {
		t.Fatalf("retention found %+v", bs)
	}
}
