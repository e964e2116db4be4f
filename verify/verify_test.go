package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/testdb"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	testdb.Create(t, good, testdb.Options{Rows: 500, BlobSize: 300})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := write("corrupt.db", data)
	testdb.Corrupt(t, corrupt, len(data)/4096/2, 4096)
	badPageSize := append([]byte(nil), data...)
	badPageSize[16], badPageSize[17] = 0x03, 0x00 // 768: not a power of two
	walNoWal := append([]byte(nil), data...)
	walNoWal[18], walNoWal[19] = 2, 2

	tests := []struct {
		name string
		path string
		ok   bool
		want string // substring of the first problem
	}{
		{"good", good, true, ""},
		{"empty", write("empty.db", nil), false, "empty file (0 bytes)"},
		{"random", write("random.db", []byte(strings.Repeat("not a database ", 600))), false, "not a SQLite database"},
		{"short", write("short.db", data[:50]), false, "not a SQLite database"},
		{"header only", write("header.db", data[:100]), false, "truncated"},
		{"cut mid-page", write("cut.db", data[:len(data)-1000]), false, "not a multiple of the page size"},
		{"cut at page", write("cutpage.db", data[:len(data)-4096*3]), false, "truncated: header says"},
		{"corrupt page", corrupt, false, ""},
		{"bad page size", write("pagesize.db", badPageSize), false, "invalid page size 768"},
		{"wal flag, no wal", write("walflag.db", walNoWal), true, ""},
		{"directory", dir, false, "not a regular file (a directory)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, quick := range []bool{false, true} {
				before := snapshot(t, dir)
				res, err := File(context.Background(), tt.path, Options{Quick: quick})
				if err != nil {
					t.Fatalf("quick=%v: operational error %v", quick, err)
				}
				if res.OK != tt.ok {
					t.Fatalf("quick=%v: OK = %v, want %v (problems %q)", quick, res.OK, tt.ok, res.Problems)
				}
				if !tt.ok && len(res.Problems) == 0 {
					t.Fatalf("quick=%v: failed without a problem", quick)
				}
				if tt.want != "" && !strings.Contains(res.Problems[0], tt.want) {
					t.Errorf("quick=%v: problem %q, want %q", quick, res.Problems[0], tt.want)
				}
				// Checking writes nothing: same names, sizes and mtimes.
				if after := snapshot(t, dir); after != before {
					t.Fatalf("quick=%v: directory changed:\nbefore %s\nafter  %s", quick, before, after)
				}
			}
		})
	}

	// A missing file is an operational error, and is not created.
	missing := filepath.Join(dir, "missing.db")
	if _, err := File(context.Background(), missing, Options{}); err == nil || !strings.Contains(err.Error(), `verify "`+missing+`": no such file`) {
		t.Errorf("missing: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("verify created the missing file")
	}
}

func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d:%s ", e.Name(), fi.Size(), fi.ModTime())
	}
	return b.String()
}

// changedSince sees a change that keeps the size and the mtime: a commit
// within one tick of the coarse clock still moves the change counter.
func TestChangedSince(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.db")
	testdb.Create(t, p, testdb.Options{Rows: 50, BlobSize: 100})
	look := func() (os.FileInfo, sqlitefile.Header) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h, err := sqlitefile.ReadHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		return fi, h
	}
	fi, h := look()
	if changedSince(p, fi, h) {
		t.Fatal("an untouched file counts as changed")
	}
	// Bump the counter in place, then put the mtime back.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	if _, err := f.ReadAt(b[:], 24); err != nil {
		t.Fatal(err)
	}
	b[3]++
	if _, err := f.WriteAt(b[:], 24); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Stat(p); now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
		t.Fatal("test setup: size or mtime moved")
	}
	if !changedSince(p, fi, h) {
		t.Error("a commit with the same size and mtime was not seen")
	}
	// A -shm appearing (an application opened it in WAL mode) is a change too.
	fi, h = look()
	if err := os.WriteFile(p+"-shm", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !changedSince(p, fi, h) {
		t.Error("a -shm that appeared was not seen")
	}
}
