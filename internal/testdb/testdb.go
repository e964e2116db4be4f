// Package testdb creates real SQLite databases for tests: the tests of
// every package build their fixtures through it instead of committing
// binary files.
package testdb

import (
	"database/sql"
	"fmt"
	"os"
	"testing"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options shape a test database.
type Options struct {
	WAL      bool // journal_mode=WAL (default: rollback journal)
	Rows     int  // rows in table t(id INTEGER PRIMARY KEY, v BLOB)
	BlobSize int  // bytes per row (default 200)
	PageSize int  // default 4096
}

// Create makes a database at path and returns it closed, so that its
// bytes are final (the WAL checkpointed and removed).
func Create(t testing.TB, path string, o Options) {
	t.Helper()
	db := Open(t, path, o)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// Open makes a database at path and returns the open handle, for tests
// that need a live "application" connection (WAL frames not yet
// checkpointed, locks held).
func Open(t testing.TB, path string, o Options) *sql.DB {
	t.Helper()
	if o.BlobSize == 0 {
		o.BlobSize = 200
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	stmts := []string{}
	if o.PageSize != 0 {
		stmts = append(stmts, fmt.Sprintf("PRAGMA page_size=%d", o.PageSize))
	}
	if o.WAL {
		stmts = append(stmts, "PRAGMA journal_mode=WAL")
	}
	stmts = append(stmts,
		"CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)",
		fmt.Sprintf("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) INSERT INTO t(v) SELECT randomblob(%d) FROM c", o.Rows, o.BlobSize),
	)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			db.Close()
			t.Fatalf("create %s: %s: %v", path, s, err)
		}
	}
	return db
}

// Count returns the rows of table in the database at path, opened
// read-only.
func Count(t testing.TB, path, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s in %s: %v", table, path, err)
	}
	return n
}

// Corrupt overwrites page n (1-based) of the file with garbage.
func Corrupt(t testing.TB, path string, page, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, pageSize)
	for i := range junk {
		junk[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(junk, int64(page-1)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}
