package verify

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestCheckConstraints: rows that break a CHECK, and a CHECK whose text
// names no column, fail verify as they fail the C CLI's read-write
// integrity_check, on SQLite's own check and on the parallel path, full
// and quick alike; a NULL passes a CHECK, as it does in SQLite; the file
// is not written.
func TestCheckConstraints(t *testing.T) {
	dir := t.TempDir()
	fillAcct := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000) INSERT INTO acct SELECT x, 100, 'n' || x, randomblob(200) FROM c"
	create := `CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER CHECK (bal >= 0), name TEXT, pad BLOB, CONSTRAINT "named (check)" CHECK(length(name) < 10 /* ) */ AND name <> 'CHECK('))`
	create += "; CREATE INDEX acct_name ON acct(name)" // two queries: the parallel path runs on two threads
	cases := []struct {
		name  string
		stmts []string
		ok    bool
		word  string // in the first problem
	}{
		{"sound", []string{create, fillAcct}, true, ""},
		{"NULL passes", []string{create, fillAcct, "UPDATE acct SET bal = NULL WHERE id = 7"}, true, ""},
		{"column CHECK broken", []string{create, fillAcct, "PRAGMA ignore_check_constraints=ON", "UPDATE acct SET bal = -1 WHERE id = 2999"}, false, "CHECK constraint failed in acct"},
		{"table CHECK broken", []string{create, fillAcct, "PRAGMA ignore_check_constraints=ON", "UPDATE acct SET name = 'CHECK(' WHERE id = 5"}, false, "CHECK constraint failed in acct"},
		{"text-to-number: a false string", []string{create, fillAcct, "PRAGMA ignore_check_constraints=ON", "UPDATE acct SET bal = '-5' WHERE id = 1"}, false, "CHECK constraint failed in acct"},
		{"CHECK names no column", []string{create, fillAcct, "UPDATE sqlite_schema SET sql = replace(sql, 'bal >= 0', 'nosuch >= 0') WHERE name = 'acct'"}, false, "malformed database schema (acct)"},
		{"WITHOUT ROWID", []string{"CREATE TABLE w(k TEXT PRIMARY KEY, v INT CHECK(v BETWEEN 0 AND 9)) WITHOUT ROWID",
			"INSERT INTO w VALUES ('a', 1), ('b', 2)", "PRAGMA ignore_check_constraints=ON", "INSERT INTO w VALUES ('c', 10)"}, false, "CHECK constraint failed in w"},
	}
	for i, c := range cases {
		path := makeDB(t, dir, fmt.Sprintf("c%d.db", i), c.stmts...)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		theirs := cliRW(t, path, "PRAGMA integrity_check")
		if (theirs == "ok") != c.ok {
			t.Fatalf("%s: the C CLI says %q: the case is built wrong", c.name, theirs)
		}
		for _, min := range []int64{parallelMinSize, 0} {
			for _, quick := range []bool{false, true} {
				name := fmt.Sprintf("%s, quick %v, min size %d", c.name, quick, min)
				t.Run(name, func(t *testing.T) {
					defer func(was int64) { parallelMinSize = was }(parallelMinSize)
					parallelMinSize = min
					res, err := File(context.Background(), path, Options{Quick: quick})
					if err != nil {
						t.Fatal(err)
					}
					if min == 0 && !quick && runtime.GOMAXPROCS(0) >= 2 && res.Threads < 2 && c.ok {
						t.Errorf("not the parallel path: %d threads", res.Threads)
					}
					if res.OK != c.ok || (!c.ok && !strings.Contains(res.Problems[0], c.word)) {
						t.Fatalf("verify: ok %v, problems %q; want ok %v (%q); the C CLI: %q", res.OK, res.Problems, c.ok, c.word, theirs)
					}
				})
			}
		}
		after, err := os.ReadFile(path)
		if err != nil || !slices.Equal(before, after) {
			t.Fatalf("%s: the file changed under verify (%v)", c.name, err)
		}
	}
}

// TestCheckExprs: the CHECK expressions are cut whole from the texts
// SQLite stores, whatever quotes, comments and parentheses hold.
func TestCheckExprs(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want []string
	}{
		{"CREATE TABLE t(a)", nil},
		{"CREATE TABLE t(a CHECK(a>0), b check ( (b) < 'x)' ), [check] INT, \"CHECK(\" TEXT)", []string{"a>0", "(b) < 'x)'"}},
		{"CREATE TABLE t(a, -- CHECK(no)\n b /* CHECK(no) */, CONSTRAINT c CHECK(a = 'it''s'))", []string{"a = 'it''s'"}},
		{"CREATE TABLE `check`(a, CHECK(a IN (1,2,3)), CHECK(\"a\" IS NOT 4))", []string{"a IN (1,2,3)", "\"a\" IS NOT 4"}},
	} {
		if got := checkExprs(c.sql); !slices.Equal(got, c.want) {
			t.Errorf("checkExprs(%q) = %q, want %q", c.sql, got, c.want)
		}
	}
}

// cliRW is the C CLI's answer on a read-write connection, which parses
// the CHECK constraints a read-only one skips.
func cliRW(t *testing.T, db, sql string) string {
	t.Helper()
	out, _ := exec.Command("sqlite3", db, sql).CombinedOutput() // a failed check exits non-zero
	return strings.TrimSpace(string(out))
}

// TestChecksBesideAgree: on the parallel path the CHECK scans run among
// the index queries; on sound and damaged databases (tables with and
// without indexes, a qualified column in a CHECK, an odd table name) it
// lists exactly the problems of SQLite's own check followed by the
// sequential CHECK scans, in the same order.
func TestChecksBesideAgree(t *testing.T) {
	dir := t.TempDir()
	schema := []string{
		"CREATE TABLE t(id INTEGER PRIMARY KEY, a, b BLOB, c TEXT CHECK (length(c) < 10), CHECK (typeof(b) IN ('text', 'null')), CHECK (t.id > 0))",
		fill,
		"CREATE INDEX t_a ON t(a)",
		"CREATE INDEX t_c ON t(c)",
		"CREATE TABLE plain(v INTEGER CHECK (v >= 0))", series + "INSERT INTO plain SELECT value FROM s",
		`CREATE TABLE "x"(v INTEGER CHECK (v >= 0))`, series + `INSERT INTO "x" SELECT value FROM s`, `CREATE INDEX x_v ON "x"(v)`,
	}
	broken := []string{"PRAGMA ignore_check_constraints=ON", "UPDATE t SET c = 'a long text ' || c WHERE id % 50 = 0", "UPDATE plain SET v = -1 WHERE v = 7", `UPDATE "x" SET v = -v WHERE v < 3`}
	tests := []struct {
		name  string
		stmts []string
		ok    bool
	}{
		{"sound", schema, true},
		{"rows break CHECKs", append(slices.Clone(schema), broken...), false},
		{"CHECKs broken and an index on other columns", append(append(slices.Clone(schema), broken...),
			"UPDATE sqlite_schema SET sql = 'CREATE INDEX t_a ON t(c)' WHERE name = 't_a'"), false},
		{"an index is another table's", append(slices.Clone(schema),
			"UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'x_v') WHERE name = 't_a'"), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeDB(t, dir, fmt.Sprintf("f%d.db", i), tt.stmts...)
			db := openImmutable(t, path)
			want, err := Check(context.Background(), db, Options{MaxProblems: 10000})
			if err != nil {
				want = []string{err.Error()}
			}
			if ok := len(want) == 0; ok != tt.ok {
				t.Fatalf("integrity_check and the CHECK scans: ok=%v, the case expects %v: %q", ok, tt.ok, want)
			}
			plan, err := planParallel(context.Background(), db, 10000)
			if err != nil || plan == nil {
				t.Fatalf("not planned: %v", err)
			}
			if plan.checks == nil || len(plan.checks.scans) != 3 {
				t.Fatalf("CHECK scans planned: %+v, want 3", plan.checks)
			}
			got, err := plan.run(context.Background(), db, 2, 10000)
			if err != nil {
				t.Fatal(err)
			}
			// The CHECK problems come last, in table order, on both.
			n := len(plan.checks.schema)
			for _, p := range want {
				if strings.HasPrefix(p, "CHECK constraint") {
					n++
				}
			}
			if !slices.Equal(got[len(got)-n:], want[len(want)-n:]) {
				t.Errorf("CHECK problems\n  %q\nwant\n  %q", got[len(got)-n:], want[len(want)-n:])
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("parallel plan found\n  %q\nintegrity_check and the CHECK scans found\n  %q", got, want)
			}
		})
	}
}
