package verify

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sqlite-backup/internal/format/sqlitefile"
)

// makeDB runs stmts on a new database at dir/name and returns its path.
// writable_schema is on, so a statement may rewrite sqlite_schema to
// damage an index the way a bug or a bad disk would: its entries no
// longer match what its definition says.
func makeDB(t *testing.T, dir, name string, stmts ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range append([]string{"PRAGMA writable_schema=ON"}, stmts...) {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return path
}

// openImmutable opens path as checkDB does.
func openImmutable(t *testing.T, path string) *sql.DB {
	t.Helper()
	uri, err := sqlitefile.URI(path, url.Values{"mode": {"ro"}, "immutable": {"1"}, "_pragma": {mmapPragma}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// series is the rows 1..400 as s(value), for INSERT … SELECT … FROM s.
const series = "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 400) "

const fill = series + `INSERT INTO t(a, b, c) SELECT
	CASE WHEN value % 7 = 0 THEN NULL WHEN value % 5 = 0 THEN value * 1.0 WHEN value % 3 = 0 THEN 'x' || (value % 40) ELSE value % 50 END,
	CASE WHEN value % 11 = 0 THEN NULL ELSE x'00ff' || randomblob(3) END,
	'c' || value
	FROM s`

// TestParallelAgreesWithIntegrityCheck: on sound databases and on
// databases whose indexes were damaged in each way integrity_check looks
// for, the parallel plan lists exactly the problems SQLite's own
// integrity_check lists.
func TestParallelAgreesWithIntegrityCheck(t *testing.T) {
	dir := t.TempDir()
	schema := []string{
		"CREATE TABLE t(id INTEGER PRIMARY KEY, a, b BLOB, c TEXT)",
		fill,
		"CREATE INDEX t_a ON t(a)",
		"CREATE INDEX t_ab ON t(a DESC, b)",
		"CREATE UNIQUE INDEX t_c ON t(c)",
	}
	tests := []struct {
		name  string
		stmts []string
		ok    bool
		// verdictOnly: the words differ where integrity_check names the
		// end-of-record check (see parallelPlan); the verdict may not.
		verdictOnly bool
	}{
		{"sound", schema, true, false},
		{"sound, odd names", []string{
			`CREATE TABLE "we""ird t"("rowid" TEXT, "sp ace" INTEGER, unique("sp ace", "rowid"))`,
			series + `INSERT INTO "we""ird t" SELECT 'r' || value, value % 9 FROM s WHERE value <= 300`,
			`CREATE INDEX "i'x" ON "we""ird t"("sp ace")`,
			"CREATE TABLE empty(x)", "CREATE INDEX empty_x ON empty(x)",
		}, true, false},
		{"sound, unique index with NULLs", []string{
			"CREATE TABLE u(a, b)", series + "INSERT INTO u SELECT NULL, value % 3 FROM s WHERE value <= 50",
			"CREATE UNIQUE INDEX u_ab ON u(a, b)",
		}, true, false},
		{"index on other columns than it says", append(slices.Clone(schema),
			"UPDATE sqlite_schema SET sql = 'CREATE INDEX t_a ON t(c)' WHERE name = 't_a'"), false, false},
		{"index of another table", append(slices.Clone(schema),
			"CREATE TABLE v(a)", series+"INSERT INTO v SELECT value % 50 FROM s WHERE value <= 100", "CREATE INDEX v_a ON v(a)",
			"UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'v_a') WHERE name = 't_a'"), false, false},
		{"duplicates in a unique index", append(slices.Clone(schema),
			"UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX t_a ON t(a)' WHERE name = 't_a'"), false, false},
		{"index records with more fields than the index has", []string{
			"CREATE TABLE t(a, b, c)", series + "INSERT INTO t SELECT value, value, value + 1 FROM s WHERE value <= 50",
			"CREATE INDEX i ON t(a, b, c)",
			// Sound to integrity_check too: the key and the rowid (the
			// last field) still match each row.
			"UPDATE sqlite_schema SET sql = 'CREATE INDEX i ON t(a)' WHERE name = 'i'",
		}, true, false},
		{"index records whose last field is not the rowid", []string{
			"CREATE TABLE t(a)", series + "INSERT INTO t SELECT value FROM s WHERE value <= 50",
			"CREATE INDEX i ON t(a)",
			"CREATE TABLE u(id INTEGER PRIMARY KEY, a, b)", series + "INSERT INTO u SELECT value + 1000, value, value FROM s WHERE value <= 50",
			"CREATE INDEX j ON u(a, b)",
			// i and j swap b-trees: i's entries are (a, b, rowid of u),
			// whose key prefix matches t's rows but whose last field is
			// not their rowid; j's are (a, rowid of t), rows of u missing.
			"CREATE TEMP TABLE rp AS SELECT name, rootpage FROM sqlite_schema WHERE name IN ('i', 'j')",
			"UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM rp WHERE rp.name <> sqlite_schema.name) WHERE name IN ('i', 'j')",
			"UPDATE sqlite_schema SET sql = 'CREATE INDEX j ON u(a)' WHERE name = 'j'",
		}, false, true},
		{"values that differ in type", []string{
			"CREATE TABLE w(id INTEGER PRIMARY KEY, n)", series + "INSERT INTO w(n) SELECT value FROM s WHERE value <= 100",
			"CREATE INDEX w_n ON w(n)", "CREATE INDEX w_s ON w(CAST(n AS TEXT))",
			// w_n now holds the text of each number, not the number.
			"UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'w_s') WHERE name = 'w_n'",
			"DELETE FROM sqlite_schema WHERE name = 'w_s'",
		}, false, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDB(t, dir, string(rune('a'+i))+".db", tt.stmts...)
			db := openImmutable(t, path)
			want, err := Check(context.Background(), db, Options{MaxProblems: 10000})
			if err != nil {
				// SQLite refusing to read on is itself the verdict (checkDB).
				want = []string{err.Error()}
			}
			if ok := len(want) == 0; ok != tt.ok {
				t.Fatalf("integrity_check ok=%v, the case expects %v: %q", ok, tt.ok, want)
			}
			plan, err := planParallel(context.Background(), db, 10000)
			if err != nil || plan == nil {
				t.Fatalf("not planned: %v", err)
			}
			got, err := plan.run(context.Background(), db, 2, 10000)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if tt.verdictOnly {
				// Other words, but about the same indexes.
				if g, w := indexesNamed(got), indexesNamed(want); len(got) == 0 || !slices.Equal(g, w) {
					t.Fatalf("parallel plan found (indexes %q)\n  %q\nintegrity_check found (indexes %q)\n  %q", g, got, w, want)
				}
				return
			}
			if !slices.Equal(got, want) {
				t.Fatalf("parallel plan found\n  %q\nintegrity_check found\n  %q", got, want)
			}
		})
	}
}

// indexesNamed lists the indexes that problems name ("... index I" or
// "... of index I"), once each, sorted.
func indexesNamed(problems []string) []string {
	var out []string
	for _, p := range problems {
		if _, name, ok := strings.Cut(p, " index "); ok {
			if _, n, ok := strings.Cut(name, " of index "); ok {
				name = n
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestParallelNotPlanned: where SQL could not say what integrity_check
// says, the plan is refused and SQLite's own check runs.
func TestParallelNotPlanned(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		stmts []string
	}{
		{"without rowid", []string{"CREATE TABLE t(a PRIMARY KEY, b) WITHOUT ROWID"}},
		{"partial index", []string{"CREATE TABLE t(a, b)", "CREATE INDEX i ON t(a) WHERE b > 0"}},
		{"expression index", []string{"CREATE TABLE t(a, b)", "CREATE INDEX i ON t(a + b)"}},
		{"nocase index", []string{"CREATE TABLE t(a, b)", "CREATE INDEX i ON t(a COLLATE NOCASE)"}},
		{"nocase column", []string{"CREATE TABLE t(a COLLATE NOCASE, b)", "CREATE INDEX i ON t(a)"}},
		{"generated column", []string{"CREATE TABLE t(a, b AS (a * 2))", "CREATE INDEX i ON t(a)"}},
		{"virtual table", []string{"CREATE VIRTUAL TABLE f USING fts5(x)"}},
		{"rowid names all taken", []string{"CREATE TABLE t(rowid, _rowid_, oid)", "CREATE INDEX i ON t(oid)"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDB(t, dir, string(rune('a'+i))+".db", tt.stmts...)
			plan, err := planParallel(context.Background(), openImmutable(t, path), 10)
			if err != nil {
				t.Fatal(err)
			}
			if plan != nil {
				t.Fatalf("planned %q", plan.queries)
			}
		})
	}
	// And the plain case is planned: the refusals above are not a
	// planner that refuses everything; with more indexes than
	// parallelMaxIndexes it is not.
	path := makeDB(t, dir, "plain.db", "CREATE TABLE t(a, b)", "CREATE INDEX i ON t(a)", "CREATE UNIQUE INDEX j ON t(b, a)")
	db := openImmutable(t, path)
	plan, err := planParallel(context.Background(), db, 10)
	if err != nil || plan == nil || len(plan.queries) != 4 {
		t.Fatalf("plain schema: plan %v, err %v; want 2 index queries, 1 unique, quick_check", plan, err)
	}
	defer func(was int) { parallelMaxIndexes = was }(parallelMaxIndexes)
	parallelMaxIndexes = 1
	if plan, err := planParallel(context.Background(), db, 10); err != nil || plan != nil {
		t.Fatalf("2 indexes over a limit of 1: plan %v, err %v", plan, err)
	}
}

// TestFileParallel: File takes the parallel path on two cores for a
// file of parallelMinSize or more, and gives the verdict of
// integrity_check, with its words; a smaller file gets SQLite's own.
func TestFileParallel(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: File runs SQLite's own check")
	}
	dir := t.TempDir()
	path := makeDB(t, dir, "bad.db",
		"CREATE TABLE t(id INTEGER PRIMARY KEY, a, b BLOB, c TEXT)", fill, "CREATE INDEX t_a ON t(a)",
		"UPDATE sqlite_schema SET sql = 'CREATE INDEX t_a ON t(c)' WHERE name = 't_a'")
	for _, min := range []int64{parallelMinSize, 0} {
		t.Run(fmt.Sprintf("min size %d", min), func(t *testing.T) {
			defer func(was int64) { parallelMinSize = was }(parallelMinSize)
			parallelMinSize = min
			threads := 2
			if min > 0 { // the file is a few hundred KB
				threads = 1
			}
			res, err := File(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.Check != "integrity_check" || res.Threads != threads || len(res.Problems) != 10 ||
				!strings.HasSuffix(res.Problems[0], " missing from index t_a") {
				t.Fatalf("damaged index: %+v, want %d threads", res, threads)
			}
		})
	}
}
