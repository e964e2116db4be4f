package chain

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
)

// TestDescribeBeforeName: the Describe hook sees the increment's final
// name before it exists, with its size and complete chain record; if it
// fails, or the rename then fails (a file appeared under the name), the
// hook's undo runs, nothing is published, the file that appeared is
// left as it was, and the index stays the parent's.
func TestDescribeBeforeName(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	cli(t, src, `PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000) INSERT INTO t(v) SELECT randomblob(300) FROM c;`)
	c := newClock()
	head := full(t, src, bdir, c)
	index := pageindex.Path(bdir, "app.db")
	before, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	cli(t, src, "UPDATE t SET v = randomblob(300) WHERE id % 100 = 0")
	c.tick()
	path := incName(bdir, "app.db", c)
	for _, tc := range []struct {
		name     string
		describe func(p *Point) error
	}{
		{"describe fails", func(p *Point) error { return errors.New("disk full") }},
		{"the name is taken meanwhile", func(p *Point) error { return os.WriteFile(p.Path, []byte("someone else's"), 0o600) }},
	} {
		undone := false
		_, err := WriteIncrement(context.Background(), IncrementOptions{Source: src, Parent: head, Index: index, Path: path, BusyTimeout: 5 * time.Second,
			Describe: func(ctx context.Context, p *Point, size int64) (func(), error) {
				if p.Path != path || size <= 0 || p.Chain.Kind != manifest.KindIncrement || p.Chain.Parent != head.Name() || p.SHA256 == "" {
					t.Errorf("%s: Describe got %s, %d bytes, %+v", tc.name, p.Path, size, p.Chain)
				}
				if _, err := os.Lstat(p.Path); err == nil {
					t.Errorf("%s: the increment has its name before Describe", tc.name)
				}
				if err := manifest.WriteSHA256(p.Path, p.SHA256); err != nil {
					t.Fatal(err)
				}
				return func() { undone = true; os.Remove(p.Path + manifest.SHA256Suffix) }, tc.describe(p)
			}})
		if err == nil || !undone {
			t.Fatalf("%s: err %v, undone %v", tc.name, err, undone)
		}
		if _, err := os.Stat(path + manifest.SHA256Suffix); err == nil {
			t.Fatalf("%s: a sidecar was left", tc.name)
		}
		if b, err := os.ReadFile(path); err == nil && string(b) != "someone else's" {
			t.Fatalf("%s: the increment was published", tc.name)
		}
		if after, _ := os.ReadFile(index); string(after) != string(before) {
			t.Fatalf("%s: the index moved on", tc.name)
		}
		os.Remove(path)
	}
}
