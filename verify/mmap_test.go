package verify

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func cli(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", db, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestFullCheckStaysStrict: reading through mmap must not weaken the
// full check. An index that misses rows (structurally sound b-trees, so
// only the cross-check of index entries against rows names it) must fail
// the full check with the same finding as the C CLI.
func TestFullCheckStaysStrict(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("needs the sqlite3 CLI: scripts/install-deps.sh installs it")
	}
	db := filepath.Join(t.TempDir(), "idx.db")
	cli(t, db, `create table t(id integer primary key, x text);
create index i on t(x);
insert into t(x) select hex(randomblob(40)) from generate_series(1, 5000);`)
	root := cli(t, db, "select rootpage from sqlite_schema where name = 'i'")
	// Hide the index, add rows it does not get, then bring it back.
	cli(t, db, "pragma writable_schema=on; delete from sqlite_schema where name = 'i';")
	cli(t, db, "insert into t(x) values ('a'), ('b'), ('c');")
	cli(t, db, "pragma writable_schema=on; insert into sqlite_schema values ('index', 'i', 't', "+root+", 'CREATE INDEX i ON t(x)');")
	if got := cli(t, db, "pragma integrity_check"); !strings.Contains(got, "missing from index i") {
		t.Fatalf("setup: C integrity_check says %q", got)
	}

	res, err := File(context.Background(), db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || !strings.Contains(res.Summary(), "missing from index i") {
		t.Fatalf("full check: ok=%v problems=%q, want index entries missing", res.OK, res.Problems)
	}
	q, err := File(context.Background(), db, Options{Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if q.OK {
		t.Fatal("quick_check passed an index with the wrong number of entries")
	}
}

// Progress reports start at 0 and end once with finished set.
func TestProgressReportsEnd(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("needs the sqlite3 CLI: scripts/install-deps.sh installs it")
	}
	db := filepath.Join(t.TempDir(), "p.db")
	cli(t, db, "create table t(x); insert into t select randomblob(500) from generate_series(1, 2000);")
	var calls, finished int
	var last, total int64
	res, err := File(context.Background(), db, Options{Progress: func(d, n int64, f bool) {
		calls++
		last, total = d, n
		if f {
			finished++
		}
		if d < 0 || d > n {
			t.Errorf("progress %d of %d", d, n)
		}
	}})
	if err != nil || !res.OK {
		t.Fatalf("File = %+v, %v", res, err)
	}
	if calls < 2 || finished != 1 || last != total || total != res.Pages {
		t.Fatalf("calls %d, finished %d, last %d/%d, pages %d", calls, finished, last, total, res.Pages)
	}
}
