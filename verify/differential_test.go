package verify

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestDifferentialAgainstSQLite3: hundreds of generated corruptions,
// each judged by verify (full and quick, SQLite's own check and the
// parallel path in turn) and by the C sqlite3 CLI's read-write
// integrity_check / quick_check on a copy of the same bytes. A false
// pass, verify saying ok where sqlite3 says not ok, fails the test;
// none is allowed. The kinds of damage:
//
//   - raw byte flips, by page type (table/index, interior/leaf, other
//     pages: overflow, free list, pointer map) and by region (b-tree
//     page header, cell pointer array, cell content), and in the 100
//     bytes of the database header;
//   - logical damage through writable_schema: an index redefined on
//     another column, collation or order, a table's columns reordered;
//   - every constraint SQLite's check tests: CHECK (broken rows, and a
//     CHECK text naming no column), NOT NULL, UNIQUE (an index made
//     UNIQUE over duplicates), STRICT column types.
//
// STRESS=full (or SQLITE_BACKUP_STRESS=full, as the reliability tests
// spell it) runs 3000 cases; DIFF_SEED picks another sequence.
func TestDifferentialAgainstSQLite3(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("no sqlite3 CLI (scripts/install-deps.sh installs it)")
	}
	n := 500
	if os.Getenv("STRESS") == "full" || os.Getenv("SQLITE_BACKUP_STRESS") == "full" {
		n = 3000
	}
	seed := uint64(20)
	if s := os.Getenv("DIFF_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	dir := t.TempDir()
	var bases [][]byte
	for i, ps := range []int{512, 1024, 4096, 65536} {
		bases = append(bases, diffBase(t, filepath.Join(dir, fmt.Sprintf("base%d.db", i)), ps, i%2 == 1))
	}
	kinds := map[string]int{}
	var falsePass, falseFail, bothBad, bothOK int
	for i := range n {
		base := bases[rng.IntN(len(bases))]
		path := filepath.Join(dir, fmt.Sprintf("case%d.db", i))
		if err := os.WriteFile(path, base, 0o600); err != nil {
			t.Fatal(err)
		}
		kind := corrupt(t, rng, path)
		kinds[strings.SplitN(kind, ":", 2)[0]]++
		quick := i%2 == 1
		parallel := i%4 < 2
		theirs := cliVerdict(t, dir, path, quick)
		func() {
			defer func(was int64) { parallelMinSize = was }(parallelMinSize)
			if parallel {
				parallelMinSize = 0
			}
			res, err := File(context.Background(), path, Options{Quick: quick})
			ours := "ok"
			switch {
			case err != nil:
				ours = "error: " + err.Error()
			case !res.OK:
				ours = res.Summary()
			}
			switch {
			case ours == "ok" && theirs != "ok":
				falsePass++
				t.Errorf("FALSE PASS, case %d (%s, quick %v, parallel %v): verify says ok, sqlite3 says %q", i, kind, quick, parallel, theirs)
			case ours != "ok" && theirs == "ok":
				falseFail++
				t.Logf("stricter than sqlite3, case %d (%s, quick %v): verify says %q", i, kind, quick, ours)
			case ours == "ok":
				bothOK++
			default:
				bothBad++
			}
		}()
		os.Remove(path)
	}
	var ks []string
	for k, v := range kinds {
		ks = append(ks, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(ks)
	t.Logf("%d cases (seed %d): both not ok %d, both ok %d, false passes %d, verify stricter %d; kinds: %s",
		n, seed, bothBad, bothOK, falsePass, falseFail, strings.Join(ks, ", "))
}

// diffBase builds a database that holds every structure the damage
// aims at: rowid and WITHOUT ROWID tables, unique and plain indexes
// (one with a collation, one descending), overflow rows, CHECK and NOT
// NULL constraints, a STRICT table, free pages, and with autovac set
// pointer-map pages.
func diffBase(t *testing.T, path string, pageSize int, autovac bool) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	av := "NONE"
	if autovac {
		av = "FULL"
	}
	rows := 600
	if pageSize >= 65536 {
		rows = 2500
	}
	series := fmt.Sprintf("WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < %d) ", rows)
	for _, q := range []string{
		fmt.Sprintf("PRAGMA page_size=%d", pageSize),
		"PRAGMA auto_vacuum=" + av,
		"CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL CHECK (bal >= 0), name TEXT, note TEXT, pad BLOB, CHECK (length(name) < 20))",
		"CREATE UNIQUE INDEX acct_name ON acct(name)",
		"CREATE INDEX acct_note ON acct(note COLLATE NOCASE)",
		"CREATE INDEX acct_bal ON acct(bal DESC, note)",
		"CREATE TABLE kv(k TEXT PRIMARY KEY, v INT, w TEXT) WITHOUT ROWID",
		"CREATE INDEX kv_v ON kv(v)",
		"CREATE TABLE typed(id INTEGER PRIMARY KEY, n INTEGER, s TEXT, r REAL, b BLOB, a ANY) STRICT",
		"CREATE TABLE loose(id INTEGER PRIMARY KEY, n INTEGER, s TEXT)",
		series + "INSERT INTO acct SELECT v, v % 97, 'n' || v, CASE WHEN v % 9 = 0 THEN NULL ELSE 'Note' || (v % 13) END, CASE WHEN v % 50 = 0 THEN randomblob(3000) ELSE randomblob(v % 40) END FROM s",
		series + "INSERT INTO kv SELECT 'k' || v, v % 31, hex(randomblob(v % 20)) FROM s",
		series + "INSERT INTO typed SELECT v, v, 's' || v, v / 3.0, randomblob(4), v FROM s",
		series + "INSERT INTO loose SELECT v, CASE WHEN v % 10 = 0 THEN 'text' ELSE v END, CASE WHEN v % 11 = 0 THEN NULL ELSE 's' || v END FROM s",
		"CREATE TABLE gone(x)",
		series + "INSERT INTO gone SELECT randomblob(200) FROM s",
		"DROP TABLE gone", // free pages
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cliVerdict(t, filepath.Dir(path), path, false); got != "ok" {
		t.Fatalf("base %s: %s", path, got)
	}
	return b
}

// corrupt damages the database at path in one generated way and names
// it ("kind: detail").
func corrupt(t *testing.T, rng *rand.Rand, path string) string {
	t.Helper()
	switch k := rng.IntN(10); {
	case k < 5:
		return flipPage(t, rng, path)
	case k < 6:
		return flipHeader(t, rng, path)
	case k < 8:
		return logical(t, rng, path)
	default:
		return constraint(t, rng, path)
	}
}

// pageType names a page by its b-tree flag byte.
func pageType(b []byte, page int) string {
	off := 0
	if page == 1 {
		off = 100
	}
	switch b[off] {
	case 2:
		return "index interior"
	case 5:
		return "table interior"
	case 10:
		return "index leaf"
	case 13:
		return "table leaf"
	}
	return "other"
}

func flipPage(t *testing.T, rng *rand.Rand, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.BigEndian.Uint16(b[16:18]))
	if ps == 1 {
		ps = 65536
	}
	byType := map[string][]int{}
	for p := 1; p*ps <= len(b); p++ {
		typ := pageType(b[(p-1)*ps:p*ps], p)
		byType[typ] = append(byType[typ], p)
	}
	types := []string{"index interior", "table interior", "index leaf", "table leaf", "other"}
	var typ string
	for typ = types[rng.IntN(len(types))]; len(byType[typ]) == 0; typ = types[rng.IntN(len(types))] {
	}
	p := byType[typ][rng.IntN(len(byType[typ]))]
	page := b[(p-1)*ps : p*ps]
	hdr := 0
	if p == 1 {
		hdr = 100
	}
	hlen := 8
	if typ == "index interior" || typ == "table interior" {
		hlen = 12
	}
	cells := 0
	if typ != "other" {
		cells = int(binary.BigEndian.Uint16(page[hdr+3:]))
	}
	region, lo, hi := "content", hdr, ps
	switch r := rng.IntN(3); {
	case typ == "other":
		region, lo, hi = "any", 0, ps
	case r == 0:
		region, lo, hi = "header", hdr, hdr+hlen
	case r == 1 && cells > 0:
		region, lo, hi = "cell pointers", hdr+hlen, min(hdr+hlen+2*cells, ps)
	default:
		lo = min(hdr+hlen+2*cells, ps-1)
	}
	flips := 1 + rng.IntN(3)
	for range flips {
		i := lo + rng.IntN(hi-lo)
		page[i] ^= byte(1 + rng.IntN(255))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("flip: %d bytes of the %s of page %d (%s, %d-byte pages)", flips, region, p, typ, ps)
}

func flipHeader(t *testing.T, rng *rand.Rand, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The fields SQLite reads: page size, versions, reserved bytes,
	// payload fractions, change counter, page count, free list, schema
	// cookie and format, cache size, autovacuum root, encoding, user
	// version, incremental vacuum, application id, version-valid-for.
	fields := []int{16, 17, 18, 19, 20, 21, 22, 23, 24, 27, 28, 29, 30, 31, 32, 35, 36, 39, 40, 43, 44, 47, 48, 52, 55, 56, 59, 60, 64, 67, 68, 92, 95, 96, 99}
	i := fields[rng.IntN(len(fields))]
	b[i] ^= byte(1 + rng.IntN(255))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("header: byte %d", i)
}

// rewrite runs statements on path with writable_schema on; "REOPEN"
// starts a new connection, which reads the schema as rewritten.
func rewrite(t *testing.T, path string, qs ...string) {
	t.Helper()
	var db *sql.DB
	open := func() {
		var err error
		if db, err = sql.Open("sqlite", path); err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("PRAGMA writable_schema=ON"); err != nil {
			t.Fatal(err)
		}
	}
	open()
	defer func() { db.Close() }()
	for _, q := range qs {
		if q == "REOPEN" {
			db.Close()
			open()
			continue
		}
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func logical(t *testing.T, rng *rand.Rand, path string) string {
	edits := []struct{ what, q string }{
		{"index on another column", "UPDATE sqlite_schema SET sql = 'CREATE INDEX acct_note ON acct(name COLLATE NOCASE)' WHERE name = 'acct_note'"},
		{"index loses its collation", "UPDATE sqlite_schema SET sql = 'CREATE INDEX acct_note ON acct(note)' WHERE name = 'acct_note'"},
		{"index order flipped", "UPDATE sqlite_schema SET sql = 'CREATE INDEX acct_bal ON acct(bal ASC, note)' WHERE name = 'acct_bal'"},
		{"index columns swapped", "UPDATE sqlite_schema SET sql = 'CREATE INDEX acct_bal ON acct(note, bal DESC)' WHERE name = 'acct_bal'"},
		{"WITHOUT ROWID index on another column", "UPDATE sqlite_schema SET sql = 'CREATE INDEX kv_v ON kv(w)' WHERE name = 'kv_v'"},
		{"table columns reordered", "UPDATE sqlite_schema SET sql = 'CREATE TABLE kv(k TEXT PRIMARY KEY, w TEXT, v INT) WITHOUT ROWID' WHERE name = 'kv'"},
		{"index rows deleted behind its back", "UPDATE sqlite_schema SET sql = 'CREATE INDEX acct_note ON acct(note COLLATE NOCASE) WHERE id > 0' WHERE name = 'acct_note'"},
		{"rootpage swapped", "UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'acct_bal') WHERE name = 'acct_note'"},
		{"index pointed at the other table", "UPDATE sqlite_schema SET sql = 'CREATE INDEX kv_v ON acct(bal)', tbl_name = 'acct' WHERE name = 'kv_v'"},
	}
	e := edits[rng.IntN(len(edits))]
	rewrite(t, path, e.q)
	return "logical: " + e.what
}

func constraint(t *testing.T, rng *rand.Rand, path string) string {
	id := 1 + rng.IntN(500)
	edits := []struct {
		what string
		qs   []string
	}{
		{"CHECK broken by a row", []string{"PRAGMA ignore_check_constraints=ON", fmt.Sprintf("UPDATE acct SET bal = -%d WHERE id = %d", 1+rng.IntN(9), id)}},
		{"table CHECK broken by a row", []string{"PRAGMA ignore_check_constraints=ON", fmt.Sprintf("UPDATE acct SET name = 'a very long name ' || name WHERE id = %d", id)}},
		{"CHECK broken by a text", []string{"PRAGMA ignore_check_constraints=ON", fmt.Sprintf("UPDATE acct SET bal = 'minus' WHERE id = %d", id)}},
		{"CHECK added that rows break", []string{"UPDATE sqlite_schema SET sql = replace(sql, 'n INTEGER, s TEXT)', 'n INTEGER CHECK (typeof(n) = ''integer''), s TEXT)') WHERE name = 'loose'"}},
		{"CHECK names no column", []string{"UPDATE sqlite_schema SET sql = replace(sql, 'bal >= 0', 'balance >= 0') WHERE name = 'acct'"}},
		{"CHECK text damaged", []string{"UPDATE sqlite_schema SET sql = replace(sql, 'length(name) < 20', 'length(name) < 20 AND') WHERE name = 'acct'"}},
		{"CHECK that NULL passes", []string{"PRAGMA ignore_check_constraints=ON", fmt.Sprintf("UPDATE acct SET name = NULL WHERE id = %d", id)}},
		{"NOT NULL added over NULLs", []string{"UPDATE sqlite_schema SET sql = replace(sql, 's TEXT)', 's TEXT NOT NULL)') WHERE name = 'loose'"}},
		{"NOT NULL added, no NULLs", []string{"UPDATE sqlite_schema SET sql = replace(sql, 'n INTEGER, s', 'n INTEGER NOT NULL, s') WHERE name = 'loose'"}},
		{"UNIQUE over duplicates", []string{"UPDATE sqlite_schema SET sql = replace(sql, 'CREATE INDEX', 'CREATE UNIQUE INDEX') WHERE name = 'acct_bal'"}},
		{"UNIQUE duplicate entry", []string{"UPDATE sqlite_schema SET sql = 'CREATE INDEX acct_name ON acct(name)' WHERE name = 'acct_name'", "REOPEN",
			fmt.Sprintf("UPDATE acct SET name = 'n%d' WHERE id = %d", id, id+1),
			"UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX acct_name ON acct(name)' WHERE name = 'acct_name'"}},
		{"STRICT over loose types", []string{"UPDATE sqlite_schema SET sql = replace(sql, 's TEXT)', 's TEXT) STRICT') WHERE name = 'loose'"}},
		{"STRICT type changed", []string{"UPDATE sqlite_schema SET sql = replace(sql, 's TEXT, r REAL', 's INTEGER, r REAL') WHERE name = 'typed'"}},
		{"NOT NULL broken under PRAGMA", []string{"UPDATE sqlite_schema SET sql = replace(sql, 'bal INTEGER NOT NULL', 'bal INTEGER') WHERE name = 'acct'", "REOPEN",
			fmt.Sprintf("UPDATE acct SET bal = NULL WHERE id = %d", id),
			"UPDATE sqlite_schema SET sql = replace(sql, 'bal INTEGER CHECK', 'bal INTEGER NOT NULL CHECK') WHERE name = 'acct'"}},
	}
	e := edits[rng.IntN(len(edits))]
	rewrite(t, path, e.qs...)
	return "constraint: " + e.what
}

// cliVerdict is the C sqlite3 CLI's read-write check of a copy of path
// (a read-write open may roll back or rewrite, and must not touch the
// bytes verify is given): "ok", or what it printed instead.
func cliVerdict(t *testing.T, dir, path string, quick bool) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "cli-copy.db")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cp)
	pragma := "PRAGMA integrity_check"
	if quick {
		pragma = "PRAGMA quick_check"
	}
	out, _ := exec.Command("sqlite3", cp, pragma).CombinedOutput()
	return strings.TrimSpace(string(out))
}
