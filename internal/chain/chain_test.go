package chain

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/testdb"
)

// TestChainBasic: a full and two increments on a WAL database with
// frames not checkpointed; each point materializes to the pages of the
// C CLI's .backup at that point, and an increment holds only the pages
// that changed.
func TestChainBasic(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	testdb.Create(t, src, testdb.Options{WAL: true, Rows: 5000})
	app := startWriter(t, src)
	exec := func(q string) { t.Helper(); app.exec(t, q) }
	exec("PRAGMA wal_autocheckpoint=0")
	c := newClock()
	points := []Point{full(t, src, bdir, c)}
	refs := []string{filepath.Join(dir, "ref0.db")}
	reference(t, src, refs[0])
	// The application's path may be a symbolic link: the second
	// increment reads the database through one, as a backup does.
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{
		"UPDATE t SET v = randomblob(200) WHERE id % 100 = 0",
		"INSERT INTO t(v) SELECT randomblob(300) FROM t WHERE id < 500; DELETE FROM t WHERE id BETWEEN 1000 AND 1100",
	} {
		exec(q)
		c.tick()
		source := src
		if i == 1 {
			source = link
		}
		var counted int
		inc, err := WriteIncrement(context.Background(), IncrementOptions{
			Source: source, Parent: points[len(points)-1], Index: pageindex.Path(bdir, "app.db"), Path: incName(bdir, "app.db", c),
			Snapshot: func(ctx context.Context, conn *sql.Conn) error {
				return conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&counted)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := cli(t, src, "SELECT count(*) FROM t"); fmt.Sprint(counted) != want {
			t.Fatalf("increment %d: the snapshot hook counted %d rows, the source has %s", i+1, counted, want)
		}
		if inc.Chain.Read != "file" || inc.Chain.Changed == 0 || inc.Chain.Changed > inc.Chain.Pages/4 {
			t.Fatalf("increment %d: read via %s, %d of %d pages changed", i+1, inc.Chain.Read, inc.Chain.Changed, inc.Chain.Pages)
		}
		points = append(points, inc.Point)
		ref := filepath.Join(dir, "ref"+string(rune('1'+i))+".db")
		reference(t, src, ref)
		refs = append(refs, ref)
	}
	for i := range points {
		out := filepath.Join(dir, "restored"+string(rune('0'+i))+".db")
		m, err := Materialize(context.Background(), points[:i+1], MaterializeOptions{Path: out})
		if err != nil {
			t.Fatal(err)
		}
		if !m.Check.OK {
			t.Fatalf("point %d: %+v", i, m.Check)
		}
		judge(t, out, refs[i])
	}
	// A database already there is never replaced, and refused before
	// any work.
	if err := os.WriteFile(filepath.Join(dir, "taken.db"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Materialize(context.Background(), points, MaterializeOptions{Path: filepath.Join(dir, "taken.db")}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("materialize over a file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "taken.db")); string(b) != "mine" {
		t.Fatal("the file was replaced")
	}
	// Checked only: nothing stays.
	tmp := t.TempDir()
	if m, err := Materialize(context.Background(), points, MaterializeOptions{TempDir: tmp}); err != nil || m.Path != "" || !m.Check.OK {
		t.Fatalf("check only: %+v %v", m, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Fatalf("check only left %v", left)
	}
}

// TestIncrementRefusesExisting: an increment never replaces a file, and
// says so before reading the source.
func TestIncrementRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	testdb.Create(t, src, testdb.Options{WAL: true, Rows: 100})
	c := newClock()
	p := full(t, src, bdir, c)
	c.tick()
	path := incName(bdir, "app.db", c)
	if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := WriteIncrement(context.Background(), IncrementOptions{Source: src, Parent: p, Index: pageindex.Path(bdir, "app.db"), Path: path})
	if err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Fatal("the file was replaced")
	}
}
