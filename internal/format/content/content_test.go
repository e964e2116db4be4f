package content

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

func open(t testing.TB, stmts ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

func hashOf(t *testing.T, db *sql.DB) *Result {
	t.Helper()
	r, err := Hash(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var schema = []string{
	"CREATE TABLE a(id INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, d DATETIME, n)",
	"CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
	"CREATE TABLE odd(rowid, _rowid_, oid)", // every rowid alias shadowed
	"CREATE INDEX a_t ON a(t)",
}

func fill(order string) []string {
	s := append([]string{}, schema...)
	return append(s,
		"INSERT INTO a VALUES (1, 'x', 1.5, x'00ff', '2024-01-01 00:00:00', NULL)",
		"INSERT INTO a VALUES (2, 'y', -0.0, x'', '2024-02-01', 7)",
		"INSERT INTO kv VALUES ('b', 2), ('a', 'one')",
		"INSERT INTO odd VALUES (3, 2, 1), (1, 2, 3)",
		"DELETE FROM a WHERE id = 99 "+order,
	)
}

// Same rows, different page layout (inserted in another order, then
// vacuumed): same hash.
func TestHashIgnoresLayout(t *testing.T) {
	a := open(t, fill("")...)
	s := append([]string{}, schema...)
	b := open(t, append(s,
		"INSERT INTO kv VALUES ('a', 'one')",
		"INSERT INTO odd VALUES (1, 2, 3)",
		"INSERT INTO a VALUES (2, 'y', -0.0, x'', '2024-02-01', 7)",
		"INSERT INTO a(id, t) VALUES (50, 'pad')",
		"INSERT INTO a VALUES (1, 'x', 1.5, x'00ff', '2024-01-01 00:00:00', NULL)",
		"INSERT INTO kv VALUES ('b', 2)",
		"INSERT INTO odd VALUES (3, 2, 1)",
		"DELETE FROM a WHERE id = 50",
		"VACUUM",
	)...)
	ha, hb := hashOf(t, a), hashOf(t, b)
	if ha.SHA256 != hb.SHA256 {
		t.Errorf("same content, different hashes: %s %s", ha.SHA256, hb.SHA256)
	}
	if len(ha.Tables) != 3 || ha.Tables[0].Name != "a" || ha.Tables[0].Rows != 2 {
		t.Errorf("tables %+v", ha.Tables)
	}
	c, err := Count(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Tables {
		if c.Tables[i].Rows != ha.Tables[i].Rows || c.Tables[i].Name != ha.Tables[i].Name {
			t.Errorf("Count %+v, Hash %+v", c.Tables[i], ha.Tables[i])
		}
	}
}

// Any change a user would care about changes the hash, including changes
// SQLite's own comparisons would call equal.
func TestHashSeesChanges(t *testing.T) {
	base := hashOf(t, open(t, fill("")...)).SHA256
	for _, change := range []string{
		"UPDATE a SET t = 'X' WHERE id = 1",
		"UPDATE a SET n = '7' WHERE id = 2",  // integer 7 -> text '7'
		"UPDATE a SET n = 7.0 WHERE id = 2",  // integer -> real
		"UPDATE a SET n = '' WHERE id = 1",   // NULL -> empty text
		"UPDATE a SET b = NULL WHERE id = 2", // empty blob -> NULL
		"UPDATE a SET r = 1.25 WHERE id = 1",
		"UPDATE a SET d = '2024-01-01T00:00:00' WHERE id = 1",
		"UPDATE a SET id = 3 WHERE id = 2", // same values, other rowid
		"DELETE FROM kv WHERE k = 'b'",
		"INSERT INTO odd VALUES (NULL, NULL, NULL)",
		"CREATE INDEX kv_v ON kv(v)", // schema
		"CREATE TABLE empty(x)",
	} {
		db := open(t, fill("")...)
		if _, err := db.Exec(change); err != nil {
			t.Fatalf("%s: %v", change, err)
		}
		if h := hashOf(t, db).SHA256; h == base {
			t.Errorf("%s: hash unchanged", change)
		}
	}
}
