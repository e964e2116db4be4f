package chain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/pageindex"
)

// TestLockBytePage: a database that grows past 1 GiB has a page SQLite
// never uses (the lock-byte page) and LTX never encodes. A chain across
// it holds: the database grows past it in the WAL (no file holds the
// page), is checkpointed (the file has a hole there), changes on both
// sides of it, shrinks below it again; read from the files and through
// sqlite_dbpage, every point materializes to the C CLI's .backup. It
// writes several files of 1.1 GB and is skipped with -short.
func TestLockBytePage(t *testing.T) {
	if testing.Short() {
		t.Skip("writes several 1.1 GB files")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	index := pageindex.Path(bdir, "app.db")
	const ps = 65536
	lock := ltx.LockPgno(ps) // 16385: byte 1 GiB
	// 1000 rows of 1 MiB: about 16,030 pages, just below the lock page.
	cli(t, src, fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 1000) INSERT INTO b(v) SELECT zeroblob(1048576) FROM c;
PRAGMA journal_mode=WAL;`, ps))
	app := startWriter(t, src)
	app.exec(t, "PRAGMA wal_autocheckpoint=0")
	c := newClock()
	points := []Point{full(t, src, bdir, c)}
	if points[0].Chain.Pages >= int64(lock) {
		t.Fatalf("the full has %d pages, the lock-byte page is %d", points[0].Chain.Pages, lock)
	}
	steps := []struct {
		what, sql string
		viaSQLite bool
	}{
		{"grown past 1 GiB in the WAL", "INSERT INTO b(v) SELECT randomblob(1048576) FROM b LIMIT 60", false},
		{"the same, through SQLite", "UPDATE b SET v = randomblob(1048576) WHERE id = 1", true},
		{"checkpointed: a hole at the lock-byte page", "PRAGMA wal_checkpoint(TRUNCATE); UPDATE b SET v = randomblob(1048576) WHERE id IN (2, 1001, 1060)", false},
		{"changed on both sides of it", "UPDATE b SET v = randomblob(1048576) WHERE id IN (999, 1000, 1002, 1003)", false},
		{"shrunk below it", "DELETE FROM b WHERE id > 990; PRAGMA wal_checkpoint(TRUNCATE); VACUUM", false},
	}
	refs := []string{filepath.Join(dir, "ref0.db")}
	reference(t, src, refs[0])
	crossed := false
	for i, s := range steps {
		app.exec(t, s.sql)
		c.tick()
		inc, err := WriteIncrement(context.Background(), IncrementOptions{Source: src, Parent: points[len(points)-1], Index: index,
			Path: incName(bdir, "app.db", c), MaxChanged: 1, throughSQLite: s.viaSQLite, BusyTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		t.Logf("%s: %d pages, %d changed, read via %s", s.what, inc.Chain.Pages, inc.Chain.Changed, inc.Chain.Read)
		if inc.Chain.Pages > int64(lock) {
			crossed = true
		}
		points = append(points, inc.Point)
		refs = append(refs, filepath.Join(dir, fmt.Sprintf("ref%d.db", i+1)))
		reference(t, src, refs[i+1])
	}
	if !crossed || points[len(points)-1].Chain.Pages >= int64(lock) {
		t.Fatal("the history did not cross the lock-byte page both ways")
	}
	for i := range points {
		out := filepath.Join(dir, "restored.db")
		if _, err := Materialize(context.Background(), points[:i+1], MaterializeOptions{Path: out}); err != nil {
			t.Fatalf("point %d: %v", i, err)
		}
		judge(t, out, refs[i])
		os.Remove(out)
		os.Remove(refs[i])
	}
}
