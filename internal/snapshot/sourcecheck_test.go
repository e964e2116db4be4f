package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/testdb"
)

// TestBackupRefusesTruncatedSource: a source shorter than its header
// says, or not a whole number of pages, is refused by both methods, even
// with the check of the copy switched off, with an error that says
// "truncated" and names the file, and a hint; nothing is published and
// the source is not touched. The size is judged under SQLite's lock (or
// once SQLite itself refused the file), so it is also judged beside a
// journal that journal_mode=PERSIST leaves, and of a WAL database that
// nobody has open.
func TestBackupRefusesTruncatedSource(t *testing.T) {
	const ps = 4096
	cut := func(size func(int64) int64) func(t *testing.T, p string) {
		return func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, size(fi.Size())); err != nil {
				t.Fatal(err)
			}
		}
	}
	pageCut := cut(func(n int64) int64 { return n - 3*ps })
	midPage := cut(func(n int64) int64 { return n - 3*ps + 1000 })
	tail := func(t *testing.T, p string) { // a partial page past the header's count
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	persist := func(t *testing.T, p string) { // leaves a -journal with a zeroed header
		cli(t, p, "PRAGMA journal_mode=PERSIST; INSERT INTO t(v) VALUES(zeroblob(10)); DELETE FROM t WHERE v = zeroblob(10);")
		if _, err := os.Stat(p + "-journal"); err != nil {
			t.Fatalf("no journal beside the PERSIST database: %v", err)
		}
	}
	tests := []struct {
		name  string
		wal   bool
		setup []func(*testing.T, string)
		want  string
	}{
		{"cut at a page boundary", false, []func(*testing.T, string){pageCut}, "truncated: header says"},
		{"cut in mid-page", false, []func(*testing.T, string){midPage}, "truncated: size"},
		{"a partial page at the end", false, []func(*testing.T, string){tail}, "truncated: size"},
		{"only the header", false, []func(*testing.T, string){cut(func(int64) int64 { return 100 })}, "truncated: size 100"},
		{"cut at a page boundary, PERSIST journal beside", false, []func(*testing.T, string){persist, pageCut}, "truncated: header says"},
		{"a partial page at the end, PERSIST journal beside", false, []func(*testing.T, string){persist, tail}, "truncated: size"},
		{"WAL database nobody has open, cut", true, []func(*testing.T, string){pageCut}, "truncated: header says"},
	}
	for _, tt := range tests {
		for _, m := range []struct {
			method Method
			check  VerifyMode
		}{{MethodBackup, VerifyFull}, {MethodBackup, VerifyNone}, {MethodVacuum, VerifyFull}, {MethodVacuum, VerifyNone}} {
			t.Run(tt.name+"/"+string(m.method)+"/"+string(m.check), func(t *testing.T) {
				dir := t.TempDir()
				src := filepath.Join(dir, "app.db")
				testdb.Create(t, src, testdb.Options{WAL: tt.wal, Rows: 200, BlobSize: 500, PageSize: ps})
				for _, f := range tt.setup {
					f(t, src)
				}
				before := sum(t, src)
				out := filepath.Join(dir, "out")
				_, err := Run(context.Background(), Options{Source: src, Dir: out, Method: m.method, Verify: m.check})
				if err == nil || !strings.Contains(err.Error(), `open source "`+src+`": `+tt.want) {
					t.Fatalf("error %v, want %q naming the source", err, tt.want)
				}
				if h := hint.Of(err); !strings.Contains(h, "restore it from a backup") {
					t.Errorf("hint %q", h)
				}
				if got := names(t, out); len(got) != 0 {
					t.Errorf("a refused source left %q", got)
				}
				if sum(t, src) != before {
					t.Error("the source changed")
				}
			})
		}
	}
}
