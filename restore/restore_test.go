package restore

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func cli(t *testing.T, db string, args ...string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", append([]string{db}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", db, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// killedCopy copies the database's files in dir as a SIGKILL at this moment
// would leave them (the page cache survives a killed process).
func killedCopy(t *testing.T, dir, name, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "-wal", "-shm", "-journal"} {
		in, err := os.Open(filepath.Join(dir, name+s))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(to, name+s))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

// TestOfflineCrashAtEveryStep stops an offline restore at each boundary
// between its steps, copies the files as they are there, and checks that
// each copy opens, in the C sqlite3, as exactly the old database
// (including transactions only in its -wal) or exactly the backup, and
// that the switch from old to new happens once. Random kill -9 runs
// (TestRestoreSIGKILL in package main) rarely land in the short windows
// around the rename; this looks at every one of them.
func TestOfflineCrashAtEveryStep(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	bk := filepath.Join(t.TempDir(), "app.bak")
	cli(t, bk, "create table t(id integer primary key, v blob); insert into t(v) select randomblob(500) from generate_series(1,300);")
	b, err := os.ReadFile(bk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Checkpointed changes (in the file) and changes only in the -wal:
	// the file alone is then neither the old database nor the backup.
	cli(t, db, "pragma journal_mode=wal; insert into t(v) select randomblob(500) from generate_series(1,50);")
	cli(t, db, ".dbconfig no_ckpt_on_close on", "pragma wal_autocheckpoint=0",
		"delete from t where id > 100; update t set v = zeroblob(500); create table walonly(x); insert into walonly values(1);")
	if fi, err := os.Stat(db + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("setup left no -wal frames: %v", err)
	}
	snaps := filepath.Join(t.TempDir(), "snaps")
	var steps []string
	take := func(name string) {
		steps = append(steps, name)
		killedCopy(t, dir, "app.db", filepath.Join(snaps, name))
	}
	take("start")
	oldSum := cli(t, filepath.Join(snaps, "start", "app.db"), ".sha3sum")
	newSum := cli(t, bk, ".sha3sum")
	if oldSum == newSum {
		t.Fatal("old and new are the same database")
	}

	afterStep = take
	defer func() { afterStep = nil }()
	res, err := Run(context.Background(), Options{Backup: bk, Target: db, Force: true, Mode: ModeOffline, BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	afterStep = nil
	take("done")
	want := []string{"start", "temp written", "settled", "sidecars removed", "renamed", "done"}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %q, want %q", steps, want)
	}

	var seq []string
	for _, s := range steps {
		p := filepath.Join(snaps, s, "app.db")
		if got := cli(t, p, "pragma integrity_check"); got != "ok" {
			t.Fatalf("crash after %q: integrity_check: %s", s, got)
		}
		switch sum := cli(t, p, ".sha3sum"); sum {
		case oldSum:
			seq = append(seq, "old")
		case newSum:
			seq = append(seq, "new")
		default:
			t.Fatalf("crash after %q: the database is neither the old one nor the backup", s)
		}
	}
	if got := strings.Join(seq, " "); got != "old old old old new new" {
		t.Fatalf("states after each step: %s", got)
	}
	if got := cli(t, db, "pragma journal_mode"); got != "wal" {
		t.Fatalf("journal_mode %s, want wal", got)
	}
	if res.SafetyCheck != "ok" || cli(t, res.SafetyCopy, ".sha3sum") != oldSum {
		t.Fatalf("safety copy %s (%s) is not the old database", res.SafetyCopy, res.SafetyCheck)
	}
}

// TestHolders sees an idle rollback-journal connection of another
// process (no lock held) and a WAL connection, and nothing once they
// are gone.
func TestHolders(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "app.db")
			cli(t, db, "pragma journal_mode="+mode+"; create table t(x)")
			if pids, err := Holders(db); err != nil || len(pids) != 0 {
				t.Fatalf("no process has it open: Holders = %v, %v", pids, err)
			}
			cmd := exec.Command("sqlite3", "-batch", db)
			in, _ := cmd.StdinPipe()
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { in.Close(); cmd.Wait() }()
			io.WriteString(in, "select count(*) from t;\n")
			buf := make([]byte, 2)
			if _, err := io.ReadFull(out, buf); err != nil {
				t.Fatal(err)
			}
			pids, err := Holders(db)
			if err != nil || !slices.Contains(pids, cmd.Process.Pid) {
				t.Fatalf("sqlite3 pid %d has it open: Holders = %v, %v", cmd.Process.Pid, pids, err)
			}
			in.Close()
			cmd.Wait()
			if pids, err := Holders(db); err != nil || len(pids) != 0 {
				t.Fatalf("after exit: Holders = %v, %v", pids, err)
			}
		})
	}
}

// Two restores in the same second each keep their safety copy: the
// second gets a -2 name instead of failing on the first one's.
func TestSafetyCopiesInOneSecond(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	bk := filepath.Join(dir, "bk.db")
	cli(t, db, "create table t(x); insert into t values (1);")
	cli(t, bk, "create table t(x); insert into t values (2);")
	at := time.Date(2026, 11, 27, 3, 0, 0, 0, time.Local)
	now := func() time.Time { return at }
	var copies []string
	for i := 0; i < 3; i++ {
		res, err := Run(context.Background(), Options{Backup: bk, Target: db, Force: true, Mode: ModeOffline, Now: now})
		if err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
		copies = append(copies, filepath.Base(res.SafetyCopy))
	}
	want := []string{"app.db.pre-restore.20261127_030000", "app.db.pre-restore.20261127_030000-2", "app.db.pre-restore.20261127_030000-3"}
	if !slices.Equal(copies, want) {
		t.Fatalf("safety copies %q, want %q", copies, want)
	}
	if got := cli(t, filepath.Join(dir, want[0]), "select x from t"); got != "1" {
		t.Errorf("first safety copy holds %q, want the original row 1", got)
	}
}
