package snapshot

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/verify"
)

// TestBackupOfRowsBreakingACheckIsNotKept: the check of the copy opens
// it read-only, where SQLite does not parse CHECK constraints; a copy
// holding a row that breaks one (the C CLI's read-write integrity_check
// says "CHECK constraint failed") is not published, quick check or full,
// whichever copier copied it.
func TestBackupOfRowsBreakingACheckIsNotKept(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	db := testdb.Open(t, src, testdb.Options{WAL: true, Rows: 100})
	for _, q := range []string{
		"CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER CHECK (bal >= 0))",
		"INSERT INTO acct SELECT id, 10 FROM t",
		"PRAGMA ignore_check_constraints=ON",
		"UPDATE acct SET bal = -10 WHERE id = 50",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defer db.Close()
	for _, m := range []struct {
		method Method
		check  VerifyMode
	}{{MethodBackup, VerifyFull}, {MethodBackup, VerifyQuick}, {MethodVacuum, VerifyFull}} {
		out := filepath.Join(t.TempDir(), "out")
		_, err := Run(context.Background(), Options{Source: src, Dir: out, Method: m.method, Verify: m.check})
		var vf *verify.FailedError
		if !errors.As(err, &vf) || !strings.Contains(err.Error(), "CHECK constraint failed in acct") {
			t.Fatalf("%s/%s: error %v, want a failed check naming the CHECK", m.method, m.check, err)
		}
		if got := names(t, out); len(got) != 0 {
			t.Errorf("a failed backup left %q", got)
		}
	}
}
