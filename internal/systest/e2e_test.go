package systest

import (
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackupUnderSteadyWriter runs the real binary while another process
// commits a row per transaction, without pause, to a WAL database. The
// backup must finish, verify, and hold exactly the rows 1..k for some k:
// one snapshot, never a torn mix. The writer must never fail a commit.
func TestBackupUnderSteadyWriter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	// Big enough (about 40 MB) that the copy spans many writer commits.
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"CREATE TABLE w(id INTEGER PRIMARY KEY, v BLOB)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000) INSERT INTO w SELECT x, randomblob(2000) FROM c",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	ready := filepath.Join(dir, "ready")
	writer := exec.Command("sqlwriter", "-ready", ready, "-blob", "300", src)
	var wout, werr bytes.Buffer
	writer.Stdout, writer.Stderr = &wout, &werr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	defer writer.Process.Kill()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer never committed: %s", werr.String())
		}
	}

	out := filepath.Join(dir, "backup.db")
	cmd := exec.Command("sqlite-backup", "--source", src, "--backup", out, "--busy-timeout", "5s")
	cmdOut, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("backup under a steady writer: %v\n%s", err, cmdOut)
	}
	if !strings.Contains(string(cmdOut), "integrity_check ok") {
		t.Errorf("output %q", cmdOut)
	}

	// Let the writer go on a little after the backup, then stop it.
	time.Sleep(100 * time.Millisecond)
	writer.Process.Signal(syscall.SIGTERM)
	if err := writer.Wait(); err != nil {
		t.Fatalf("writer failed (a failed commit?): %v\n%s", err, werr.String())
	}
	committed, err := strconv.Atoi(strings.TrimSpace(wout.String()))
	if err != nil || committed == 0 {
		t.Fatalf("writer output %q", wout.String())
	}

	// An independent client: a rollback-journal file, sound, and rows 1..k.
	q := exec.Command("sqlite3", out, "PRAGMA journal_mode; PRAGMA integrity_check; SELECT count(*), min(id), max(id) FROM w;")
	got, err := q.Output()
	if err != nil {
		t.Fatalf("sqlite3: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != 3 || lines[0] != "delete" || lines[1] != "ok" {
		t.Fatalf("sqlite3 says %q", got)
	}
	f := strings.Split(lines[2], "|")
	n, _ := strconv.Atoi(f[0])
	lo, _ := strconv.Atoi(f[1])
	hi, _ := strconv.Atoi(f[2])
	if lo != 1 || n != hi || n < 20001 {
		t.Fatalf("backup holds %d rows, ids %d..%d: not a prefix 1..k including the writer's first commit", n, lo, hi)
	}
	final := 20000 + committed
	if hi >= final {
		t.Errorf("backup holds every row the writer ever committed (%d of %d): the writer did not run during the backup", hi, final)
	}
	t.Logf("backup holds ids 1..%d; writer committed up to %d", hi, final)
}

// TestSourceAndDirUntouched: backing up a quiescent WAL database leaves
// its bytes and its -wal's bytes as they were, and verify leaves a
// directory exactly as it was.
func TestSourceAndDirUntouched(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	app, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	for _, s := range []string{
		"CREATE TABLE t(x)",
		"INSERT INTO t VALUES (1), (2), (3)",
	} {
		if _, err := app.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	db0, wal0 := read(src), read(src+"-wal")
	if len(wal0) == 0 {
		t.Fatal("test setup: the -wal is empty")
	}
	out := filepath.Join(dir, "b.db")
	if b, err := exec.Command("sqlite-backup", "--source", src, "--backup", out).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !bytes.Equal(read(src), db0) || !bytes.Equal(read(src+"-wal"), wal0) {
		t.Fatal("backing up changed the source or its -wal")
	}

	// verify: no new files, same bytes and mtimes.
	list := func() string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range entries {
			fi, _ := e.Info()
			b.WriteString(e.Name() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
		}
		return b.String()
	}
	before := list()
	if b, err := exec.Command("sqlite-backup", "verify", out).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if after := list(); after != before {
		t.Fatalf("verify changed the directory:\n%s\n%s", before, after)
	}
}
