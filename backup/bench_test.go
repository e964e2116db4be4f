package backup

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/verify"
)

// BenchmarkBackup measures what --deep, the default row counts and
// compression add to a backup, on a generated database of
// SQLITE_BACKUP_BENCH_MB megabytes (default 64; docs/SIDECARS.md quotes
// 1024). Compare the sub-benchmarks of one run with each other:
//
//	SQLITE_BACKUP_BENCH_MB=1024 go test -run '^$' -bench Backup -benchtime 1x ./backup
func BenchmarkBackup(b *testing.B) {
	mb := 64
	if v := os.Getenv("SQLITE_BACKUP_BENCH_MB"); v != "" {
		var err error
		if mb, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	src := filepath.Join(b.TempDir(), "bench.db")
	benchDB(b, src, mb)
	fi, _ := os.Stat(src)
	b.Logf("database: %d MB", fi.Size()>>20)
	// Start every sub-benchmark from a warm page cache, so the first one
	// does not pay for reading the file from disk.
	if _, err := manifest.FileSHA256(src); err != nil {
		b.Fatal(err)
	}

	run := func(name string, opts Options) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(fi.Size())
			for b.Loop() {
				dir := b.TempDir()
				o := opts
				o.Backup.Source, o.Backup.Dir = src, dir
				if _, err := Run(context.Background(), o); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(dir)
			}
		})
	}
	plain := snapshot.Options{Verify: snapshot.VerifyNone}
	// The core's copy alone, without this package's additions.
	b.Run("copy-only", func(b *testing.B) {
		b.SetBytes(fi.Size())
		for b.Loop() {
			dir := b.TempDir()
			o := plain
			o.Source, o.Dir = src, dir
			if _, err := snapshot.Run(context.Background(), o); err != nil {
				b.Fatal(err)
			}
			os.RemoveAll(dir)
		}
	})
	run("copy+counts+sha256", Options{Backup: plain})
	run("copy+deep+sha256", Options{Backup: plain, Deep: true})
	run("copy+counts+zstd", Options{Backup: snapshot.Options{Verify: snapshot.VerifyNone, Compress: compress.Zstd}})
	// verify alone, with and without --deep, on one deep backup.
	dir := b.TempDir()
	r, err := Run(context.Background(), Options{Backup: snapshot.Options{Source: src, Dir: dir, Verify: snapshot.VerifyNone}, Deep: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, deep := range []bool{false, true} {
		name := "verify"
		if deep {
			name = "verify-deep"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(fi.Size())
			for b.Loop() {
				v, err := verify.File(context.Background(), r.Path, verify.Options{Deep: deep})
				if err != nil || !v.OK {
					b.Fatal(err, v.Problems)
				}
			}
		})
	}
}

// benchDB fills a database of about mb megabytes with mixed rows: text,
// integers, reals and blobs, with one secondary index.
func benchDB(b *testing.B, path string, mb int) {
	b.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows := mb << 20 / 290 // about 290 bytes a row with the index and tags
	for _, q := range []string{
		"CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, n INTEGER, price REAL, payload BLOB)",
		"CREATE INDEX items_n ON items(n)",
		"CREATE TABLE tags(item INTEGER, tag TEXT, PRIMARY KEY(item, tag)) WITHOUT ROWID",
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?)
		INSERT INTO items(name, n, price, payload) SELECT hex(randomblob(40)), abs(random()) % 100000, i / 7.0, randomblob(150) FROM s`, rows); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO tags SELECT id, 'tag' || (id % 13) FROM items WHERE id % 10 = 0`); err != nil {
		b.Fatal(err)
	}
}
