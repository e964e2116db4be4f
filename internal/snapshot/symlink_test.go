package snapshot

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/testdb"
)

// movedBehindLink builds the state of a database moved to another
// directory and replaced by a symbolic link, with the -wal and -shm of
// an earlier moment still beside the link: SQLite follows the link and
// uses the target's -wal/-shm, never the ones beside the link. With
// frames, the stale -wal holds page images of accounts 1 and 2 before
// a transfer the real database has long checkpointed. It returns the
// link and the application's connection to the real file, which holds
// a further transfer in its WAL (not checkpointed).
func movedBehindLink(t *testing.T, frames bool) (link string, app *sql.DB) {
	t.Helper()
	old, moved := t.TempDir(), t.TempDir()
	link = filepath.Join(old, "app.db")
	db := testdb.Open(t, link, testdb.Options{WAL: true, Rows: 0})
	exec := func(db *sql.DB, qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec(db, "PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL, pad BLOB)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 16000) INSERT INTO acct SELECT x, 1000, randomblob(300) FROM c",
		"PRAGMA wal_checkpoint(TRUNCATE)")
	if frames {
		// Every page in the stale WAL, all but one of them as the file
		// will hold them: a spot check of some pages misses the one.
		exec(db, "UPDATE acct SET pad = randomblob(300)",
			"UPDATE acct SET bal = bal - 100 WHERE id = 1", "UPDATE acct SET bal = bal + 100 WHERE id = 2")
	}
	// Copies of the sidecars of this moment, kept while the connection
	// still has them (closing removes them).
	stale := map[string][]byte{}
	for _, s := range []string{"-wal", "-shm"} {
		b, err := os.ReadFile(link + s)
		if err != nil {
			t.Fatal(err)
		}
		stale[s] = b
	}
	// More transfers, all checkpointed into the file.
	exec(db, "UPDATE acct SET bal = bal - 7 WHERE id = 1", "UPDATE acct SET bal = bal + 7 WHERE id = 2",
		"UPDATE acct SET bal = bal - 5 WHERE id = 3", "UPDATE acct SET bal = bal + 5 WHERE id = 1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(moved, "app.db")
	if err := os.Rename(link, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for s, b := range stale {
		if err := os.WriteFile(link+s, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app = testdb.Open(t, real, testdb.Options{WAL: true, Rows: 0})
	t.Cleanup(func() { app.Close() })
	exec(app, "PRAGMA wal_autocheckpoint=0",
		"BEGIN", "UPDATE acct SET bal = bal - 30 WHERE id = 2", "UPDATE acct SET bal = bal + 30 WHERE id = 4", "COMMIT")
	return link, app
}

// accounts is the balances of a database, in id order, and their sum.
func accounts(t *testing.T, path string) (string, int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bals string
	var sum int64
	if err := db.QueryRow("SELECT group_concat(id || '=' || bal, ','), sum(bal) FROM (SELECT * FROM acct ORDER BY id)").Scan(&bals, &sum); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return bals, sum
}

// TestSymlinkedSourceWithStaleSidecars: a backup of a symlinked source
// copies what SQLite reads through the link (the target's WAL), never
// the stale -wal/-shm beside the link; the balances of the copy are the
// application's, byte for byte, and their sum is the constant the
// transfers keep. The file copy is used, and the result names both the
// link and the real file.
func TestSymlinkedSourceWithStaleSidecars(t *testing.T) {
	for _, c := range []struct {
		name   string
		frames bool
		clean  bool // nothing beside the link
	}{
		{"stale index without frames", false, false},
		{"stale index with frames", true, false},
		{"nothing beside the link", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			link, app := movedBehindLink(t, c.frames)
			if c.clean {
				os.Remove(link + "-wal")
				os.Remove(link + "-shm")
			}
			real, err := filepath.EvalSymlinks(link)
			if err != nil {
				t.Fatal(err)
			}
			want, wantSum := accounts(t, real)
			if wantSum != 16000*1000 {
				t.Fatalf("the application's balances sum to %d", wantSum)
			}
			for _, kernel := range []bool{true, false} {
				defer func(v bool) { noKernelCopy = v }(noKernelCopy)
				noKernelCopy = !kernel
				out := filepath.Join(t.TempDir(), "copy.db")
				res, err := Run(context.Background(), Options{Source: link, Path: out, BusyTimeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				got, sum := accounts(t, out)
				if got != want || sum != wantSum {
					t.Fatalf("backup through the link holds balances summing to %d, want %d:\n got %s\nwant %s", sum, wantSum, got, want)
				}
				if res.Copier != CopierFile {
					t.Errorf("copier %q (skipped: %s), want the file copy", res.Copier, res.FileCopySkipped)
				}
				if res.Source != link || res.SourceTarget != real {
					t.Errorf("result names source %q (target %q), want %q -> %q", res.Source, res.SourceTarget, link, real)
				}
				if !strings.HasPrefix(filepath.Base(out), "copy") {
					t.Fatal(out)
				}
			}
			// The stale files beside the link are left as they were.
			if !c.clean {
				if _, err := os.Stat(link + "-shm"); err != nil {
					t.Fatal(err)
				}
			}
			_ = app
		})
	}
}

// TestPlanCrossChecksWhatSQLiteOpened: handed the path of a link (the
// copier's sidecar names then point beside the link, at stale files),
// the plan finds that SQLite opened another file and leaves the copy to
// the backup API: the cross check holds even where the path was not
// resolved first.
func TestPlanCrossChecksWhatSQLiteOpened(t *testing.T) {
	for _, frames := range []bool{false, true} {
		link, _ := movedBehindLink(t, frames)
		files := openSourceFiles(link)
		db, err := sql.Open("sqlite", "file:"+link+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		plan, why, err := beginSnapshot(context.Background(), conn, files)
		if err != nil {
			t.Fatal(err)
		}
		if plan != nil || !strings.Contains(why, "SQLite reads") {
			t.Errorf("frames %v: plan %v (%q), want none: SQLite reads the link's target", frames, plan != nil, why)
		}
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
		files.Close()
	}
}

// TestHeldElsewhere: a file this process has open once (ours) is not
// held by SQLite; opened a second time, it is.
func TestHeldElsewhere(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x-shm")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	held, known := heldElsewhere(f)
	if !known {
		t.Skip("cannot be told on this system")
	}
	if held {
		t.Fatal("held elsewhere with one descriptor")
	}
	g, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if held, _ := heldElsewhere(f); !held {
		t.Fatal("not held elsewhere with two descriptors")
	}
}
