package systest

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExoticDatabases is scenario 7: unusual but valid databases, built
// by the C sqlite3 CLI, back up with both methods and verify, and the C
// CLI (an independent client) sees the same content (.dump) and the same
// header settings in the backup as in the source.
func TestExoticDatabases(t *testing.T) {
	rows := "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300) "
	cases := []struct{ name, sql string }{
		{"page size 512", "PRAGMA page_size=512; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);" +
			rows + "INSERT INTO t(v, b) SELECT hex(randomblob(50)), randomblob(i*7) FROM c; CREATE INDEX t_v ON t(v);"},
		{"page size 65536", "PRAGMA page_size=65536; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);" +
			rows + "INSERT INTO t(v, b) SELECT hex(randomblob(50)), randomblob(i*100) FROM c; CREATE INDEX t_v ON t(v);"},
		{"auto_vacuum incremental", "PRAGMA auto_vacuum=INCREMENTAL; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);" +
			rows + "INSERT INTO t(b) SELECT randomblob(3000) FROM c; DELETE FROM t WHERE id%3=0; PRAGMA incremental_vacuum(20);"},
		{"auto_vacuum full", "PRAGMA auto_vacuum=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);" +
			rows + "INSERT INTO t(b) SELECT randomblob(3000) FROM c; DELETE FROM t WHERE id%2=0;"},
		{"UTF-16le", "PRAGMA encoding='UTF-16le'; CREATE TABLE t(s TEXT);" +
			"INSERT INTO t VALUES('héllo wörld'),('日本語テキスト'),('emoji 😀 ok'),('');"},
		{"UTF-16be", "PRAGMA encoding='UTF-16be'; CREATE TABLE t(s TEXT COLLATE NOCASE); CREATE INDEX t_s ON t(s);" +
			"INSERT INTO t VALUES('Ünïcödé'),('ΑΒΓ'),('𝄞 clef');"},
		{"WITHOUT ROWID", "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;" +
			rows + "INSERT INTO kv SELECT 'key'||i, randomblob(i*20) FROM c;"},
		{"FTS5", "CREATE VIRTUAL TABLE docs USING fts5(title, body);" +
			rows + "INSERT INTO docs SELECT 'title '||i, 'the quick brown fox '||hex(randomblob(40)) FROM c;" +
			"INSERT INTO docs VALUES('needle', 'a haystack with one zebra');"},
		{"R*Tree", "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1, y0, y1);" +
			rows + "INSERT INTO boxes SELECT i, i, i+1.5, -i, -i+2 FROM c;"},
		{"generated columns", "CREATE TABLE g(a INTEGER, b INTEGER, v INTEGER GENERATED ALWAYS AS (a*b) VIRTUAL, s TEXT GENERATED ALWAYS AS (a||'-'||b) STORED);" +
			"CREATE INDEX g_v ON g(v);" + rows + "INSERT INTO g(a, b) SELECT i, i*3 FROM c;"},
		{"STRICT table, views, triggers", "CREATE TABLE s(id INTEGER PRIMARY KEY, n REAL NOT NULL, t TEXT) STRICT;" +
			"CREATE TABLE log(x); CREATE TRIGGER s_ins AFTER INSERT ON s BEGIN INSERT INTO log VALUES(new.id); END;" +
			"CREATE VIEW big AS SELECT * FROM s WHERE n > 100;" + rows + "INSERT INTO s(n, t) SELECT i*1.5, 'r'||i FROM c;"},
		{"huge blobs", "CREATE TABLE h(id INTEGER PRIMARY KEY, b BLOB); INSERT INTO h(b) VALUES(randomblob(8*1024*1024)), (zeroblob(4*1024*1024));"},
		{"user_version and application_id", "PRAGMA user_version=20261127; PRAGMA application_id=1234567890; CREATE TABLE t(x); INSERT INTO t VALUES(1);"},
		{"negative user_version", "PRAGMA user_version=-5; CREATE TABLE t(x);"},
		{"no tables", "PRAGMA user_version=3;"},
		{"tables dropped, free pages", "CREATE TABLE t(b);" + rows + "INSERT INTO t SELECT randomblob(4000) FROM c; DROP TABLE t;"},
		{"WAL, not checkpointed", "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v);" +
			rows + "INSERT INTO t(v) SELECT randomblob(500) FROM c;"},
	}
	pragmas := []string{"page_size", "encoding", "user_version", "application_id", "auto_vacuum"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "x.db")
			cli3(t, src, tc.sql)
			want, wantSorted := dumpSum(t, src)
			wantP := pragmaValues(t, src, pragmas)
			srcSum := fileSum(t, src)
			for _, method := range []string{"backup", "vacuum"} {
				out := filepath.Join(dir, "out-"+method)
				r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out, "--method", method, "--json")
				if r.code != 0 {
					t.Fatalf("%s: exit %d\n%s", method, r.code, r.stderr)
				}
				var res struct{ Path string }
				oneResult(t, r.stdout, &res)
				// VACUUM INTO rewrites sqlite_schema, so a virtual table's
				// row may come after its shadow tables: same content, other
				// order of the .dump's lines.
				got, gotSorted := dumpSum(t, res.Path)
				if got != want && (method == "backup" || gotSorted != wantSorted) {
					t.Errorf("%s: .dump of the backup differs from the source's", method)
				}
				if got := pragmaValues(t, res.Path, pragmas); got != wantP {
					t.Errorf("%s: header settings differ:\nsource %s\nbackup %s", method, wantP, got)
				}
				if got := cli3(t, res.Path, "PRAGMA integrity_check; PRAGMA journal_mode;"); got != "ok\ndelete\n" {
					t.Errorf("%s: sqlite3 on the backup: %q", method, got)
				}
				if strings.HasPrefix(tc.name, "FTS5") {
					// FTS5's own consistency check and a full-text query.
					if got := cli3(t, res.Path, "INSERT INTO docs(docs) VALUES('integrity-check'); SELECT title FROM docs WHERE docs MATCH 'zebra';"); got != "needle\n" {
						t.Errorf("%s: FTS5 query on the backup: %q", method, got)
					}
				}
				if r := runBin(t, runOpts{}, "verify", res.Path); r.code != 0 {
					t.Errorf("%s: verify: exit %d\n%s%s", method, r.code, r.stdout, r.stderr)
				}
			}
			// The WAL case is read through its -wal; everything else
			// must be byte for byte what it was.
			if fileSum(t, src) != srcSum {
				t.Error("the source changed")
			}
		})
	}
}

// dumpSum hashes the C CLI's .dump of db as it is and with its lines
// sorted (a huge blob dumps to tens of MB of hex; hashes are enough).
func dumpSum(t *testing.T, db string) (exact, sorted string) {
	t.Helper()
	d := cli3(t, db, ".dump")
	h := sha256.Sum256([]byte(d))
	lines := strings.Split(d, "\n")
	slices.Sort(lines)
	hs := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h[:]), hex.EncodeToString(hs[:])
}

func pragmaValues(t *testing.T, db string, names []string) string {
	t.Helper()
	var q []string
	for _, n := range names {
		q = append(q, "PRAGMA "+n+";")
	}
	return strings.ReplaceAll(cli3(t, db, strings.Join(q, "")), "\n", " ")
}
