package verify

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seedDB builds a small database (512-byte pages, so a few KB) with an
// index, overflow rows and, per variant, other header settings: the
// fuzzer mutates these bytes.
func seedDB(tb testing.TB, pragmas string) []byte {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "seed.db")
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA page_size=512", pragmas,
		"CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)",
		"CREATE TABLE w(k TEXT PRIMARY KEY, n INT) WITHOUT ROWID",
		"WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value+1 FROM c WHERE value<5) INSERT INTO t(k, v) SELECT 'k'||value, zeroblob(value*150) FROM c",
		"WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value+1 FROM c WHERE value<8) INSERT INTO w SELECT 'w'||value, value FROM c",
		"CREATE VIEW tv AS SELECT k FROM t",
	} {
		if q == "" {
			continue
		}
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzVerify feeds mutated database bytes to File: it must always come
// back with a verdict (OK, or not OK with at least one problem) and no
// error for a readable file, within a bound (no hang); it must not write
// the file or create anything beside it; quick_check may not pass what
// integrity_check fails... the other way round; and a file called OK must
// read in full.
func FuzzVerify(f *testing.F) {
	f.Add(seedDB(f, ""))
	f.Add(seedDB(f, "PRAGMA auto_vacuum=INCREMENTAL"))
	f.Add(seedDB(f, "PRAGMA encoding='UTF-16le'"))
	f.Add(seedDB(f, "PRAGMA journal_mode=WAL"))
	f.Add([]byte("SQLite format 3\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "x.db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var verdicts [2]Result
		for i, quick := range []bool{false, true} {
			res, err := File(ctx, p, Options{Quick: quick})
			if ctx.Err() != nil {
				t.Fatalf("no verdict within 30s (quick=%v)", quick)
			}
			if err != nil {
				t.Fatalf("quick=%v: error instead of a verdict: %v", quick, err)
			}
			if res.OK == (len(res.Problems) > 0) {
				t.Fatalf("quick=%v: OK=%v with problems %q", quick, res.OK, res.Problems)
			}
			verdicts[i] = res
		}
		if verdicts[0].OK && !verdicts[1].OK {
			t.Fatalf("integrity_check ok but quick_check failed: %q", verdicts[1].Problems)
		}
		if verdicts[0].OK {
			if err := readAll(ctx, p); err != nil {
				t.Fatalf("verify said ok, but reading it fails: %v", err)
			}
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("verify changed the file (%v)", err)
		}
		if es, _ := os.ReadDir(dir); len(es) != 1 {
			t.Fatalf("verify created files beside it: %v", es)
		}
	})
}

// readAll reads every row of every ordinary table, the way a restore
// would need to.
func readAll(ctx context.Context, p string) error {
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro&immutable=1")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type='table' AND sql NOT LIKE 'CREATE VIRTUAL%'")
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range names {
		var c int64
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM (SELECT * FROM "%s")`, n)).Scan(&c); err != nil {
			return fmt.Errorf("table %q: %w", n, err)
		}
	}
	return nil
}
