package verify

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestVerifySymlinkToALiveWAL: verify given a symbolic link judges the
// file SQLite reads through it, with its WAL. The damage here (an
// index redefined through writable_schema) is committed to the WAL of
// the link's target and not checkpointed; beside the link lies nothing,
// and a check that judged "stands alone" there opened the file
// immutable, read it without its WAL and said ok.
func TestVerifySymlinkToALiveWAL(t *testing.T) {
	real := filepath.Join(t.TempDir(), "app.db")
	link := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+real+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE t(id INTEGER PRIMARY KEY, a, b BLOB, c TEXT)", fill, "CREATE INDEX t_a ON t(a)",
		"PRAGMA wal_checkpoint(TRUNCATE)", // the file alone is sound
		"PRAGMA writable_schema=ON", "UPDATE sqlite_schema SET sql = 'CREATE INDEX t_a ON t(c)' WHERE name = 't_a'"} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{real, link} {
		res, err := File(context.Background(), p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.OK {
			t.Errorf("verify %s: ok, but the database SQLite reads has a damaged index", p)
		}
	}
}
