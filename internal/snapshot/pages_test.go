package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sqlite-backup/internal/testdb"
)

// readAllPages reads the snapshot of src through Pages into one file and
// says how it was read.
func readAllPages(t *testing.T, src, out string, opts PagesOptions) (*Pages, error) {
	t.Helper()
	p, err := OpenPages(context.Background(), src, opts)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := int64(1)
	err = p.Read(context.Background(), func(first int64, buf []byte) error {
		if first != next || len(buf)%p.PageSize != 0 || len(buf) == 0 {
			t.Fatalf("chunk at page %d of %d bytes, page %d was due", first, len(buf), next)
		}
		next += int64(len(buf) / p.PageSize)
		_, err := f.WriteAt(buf, (first-1)*int64(p.PageSize))
		return err
	})
	if err == nil && next != p.Count+1 {
		t.Fatalf("read %d pages of %d", next-1, p.Count)
	}
	return p, err
}

// TestPages: in every state of TestFileCopy, Pages hands over exactly
// the pages SQLite reads for the snapshot (page 1 as a self-contained
// copy has it), read from the files where the plan proves it and through
// sqlite_dbpage when asked; the pages make a database the C CLI finds
// sound.
func TestPages(t *testing.T) {
	grow := []string{
		"PRAGMA wal_autocheckpoint=0",
		"INSERT INTO t(v) SELECT randomblob(500) FROM t",
		"CREATE TABLE u(x)",
		"UPDATE t SET v = randomblob(50) WHERE id % 3 = 0",
		"DELETE FROM t WHERE id % 5 = 0",
	}
	states := []struct {
		name string
		opts testdb.Options
		app  []string
	}{
		{"rollback journal", testdb.Options{Rows: 3000}, nil},
		{"rollback journal, 512-byte pages", testdb.Options{Rows: 500, PageSize: 512}, nil},
		{"WAL, empty", testdb.Options{WAL: true, Rows: 3000}, nil},
		{"WAL, frames not checkpointed", testdb.Options{WAL: true, Rows: 3000}, grow},
		{"WAL, frames not checkpointed, 64 KiB pages", testdb.Options{WAL: true, Rows: 3000, PageSize: 65536}, grow},
		{"WAL, all frames checkpointed", testdb.Options{WAL: true, Rows: 3000}, append(grow[1:len(grow):len(grow)], "PRAGMA wal_checkpoint(PASSIVE)")},
		{"WAL, shrunk by VACUUM in the WAL", testdb.Options{WAL: true, Rows: 3000}, []string{
			"PRAGMA wal_autocheckpoint=0", "DELETE FROM t WHERE id > 100", "VACUUM"}},
	}
	for _, st := range states {
		for _, viaSQLite := range []bool{false, true} {
			name := st.name
			if viaSQLite {
				name += ", through SQLite"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				src := filepath.Join(dir, "app.db")
				testdb.Create(t, src, st.opts)
				if st.app != nil {
					app := testdb.Open(t, src, testdb.Options{WAL: st.opts.WAL})
					defer app.Close()
					for _, s := range st.app {
						if _, err := app.Exec(s); err != nil {
							t.Fatalf("%s: %v", s, err)
						}
					}
				}
				out := filepath.Join(dir, "pages.db")
				p, err := readAllPages(t, src, out, PagesOptions{BusyTimeout: 5 * time.Second, ThroughSQLite: viaSQLite})
				if err != nil {
					t.Fatal(err)
				}
				want := ViaFile
				if viaSQLite {
					want = ViaSQLite
				}
				if p.Via != want {
					t.Fatalf("read via %s (%s), want %s", p.Via, p.Why, want)
				}
				samePages(t, src, out)
				if got := cli(t, out, "pragma integrity_check"); got != "ok" {
					t.Fatalf("integrity_check: %s", got)
				}
				// The snapshot hook sees the pages' snapshot.
				q, err := OpenPages(context.Background(), src, PagesOptions{ThroughSQLite: viaSQLite})
				if err != nil {
					t.Fatal(err)
				}
				defer q.Close()
				var rows int
				if err := q.Snapshot(context.Background(), func(ctx context.Context, conn *sql.Conn) error {
					return conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&rows)
				}); err != nil {
					t.Fatal(err)
				}
				if want := testdb.Count(t, out, "t"); rows != want {
					t.Fatalf("the hook counted %d rows, the pages hold %d", rows, want)
				}
			})
		}
	}
}

// TestPagesPlanFails: when the spot check finds the file read unlike
// SQLite's view, Read fails with ErrPlan (nothing read may be used), and
// a second snapshot read through SQLite gives the right pages.
func TestPagesPlanFails(t *testing.T) {
	defer func(v bool) { failSpotCheck = v }(failSpotCheck)
	failSpotCheck = true
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{WAL: true, Rows: 2000})
	app := testdb.Open(t, src, testdb.Options{WAL: true})
	defer app.Close()
	if _, err := app.Exec("PRAGMA wal_autocheckpoint=0; INSERT INTO t(v) SELECT randomblob(300) FROM t"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pages.db")
	if _, err := readAllPages(t, src, out, PagesOptions{}); !errors.Is(err, ErrPlan) {
		t.Fatalf("got %v, want ErrPlan", err)
	}
	os.Remove(out)
	p, err := readAllPages(t, src, out, PagesOptions{ThroughSQLite: true})
	if err != nil || p.Via != ViaSQLite {
		t.Fatalf("retry through SQLite: %v", err)
	}
	samePages(t, src, out)
}

// TestPagesSource: Pages checks the source as a backup does.
func TestPagesSource(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenPages(context.Background(), filepath.Join(dir, "missing.db"), PagesOptions{}); err == nil {
		t.Fatal("a missing source was opened")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Fatal("the missing source was created")
	}
}
