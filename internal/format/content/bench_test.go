package content

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// BenchmarkHash measures Hash alone on a 64 MB database of mixed rows.
//
//	go test -run '^$' -bench Hash ./internal/format/content
func BenchmarkHash(b *testing.B) {
	path := filepath.Join(b.TempDir(), "h.db")
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, n INTEGER, price REAL, payload BLOB)",
		`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 230000)
		INSERT INTO items(name, n, price, payload) SELECT hex(randomblob(40)), abs(random()) % 100000, i / 7.0, randomblob(150) FROM s`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	var pages, size int64
	db.QueryRow("PRAGMA page_count").Scan(&pages)
	db.QueryRow("PRAGMA page_size").Scan(&size)
	b.SetBytes(pages * size)
	for b.Loop() {
		if _, err := Hash(context.Background(), db); err != nil {
			b.Fatal(err)
		}
	}
}
