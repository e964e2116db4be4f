package systest

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tortureCase is one scenario of TestTortureCopier.
type tortureCase struct {
	name       string
	pageSize   int
	writers    int
	chaos      string // tortureMain's -chaos
	autoVacuum string // NONE, FULL or INCREMENTAL
	// link: "" (the source as it is), "clean" (--source is a symbolic
	// link to it, nothing beside the link), "stale frames" and "stale
	// empty" (with the -wal and -shm of an older state of the database
	// beside the link: frames not checkpointed, or all checkpointed).
	link   string
	nobody bool // back up as the user nobody, to whom the -shm is read-only
	// journal is the journal mode every writer's connection sets (""
	// leaves the schema's WAL and whatever -chaos mode does to it).
	journal string
	// incremental takes the backups as points of incremental chains
	// (a full every 4, every increment checked materialized); each is
	// judged as restore materializes it (TestTortureIncremental).
	incremental bool
}

// TestTortureCopier: backups taken back to back while 1 to 4 writer
// processes commit and disturb the database (checkpoints of every kind
// and WAL restarts, the last connection closing and reopening, WAL <->
// DELETE switches, VACUUM and auto_vacuum shrinking), of sources behind
// symbolic links with and without stale sidecars, and as a user who may
// not write the -shm, and with writers in every journal mode (DELETE,
// TRUNCATE, PERSIST, MEMORY, OFF, WAL): with MEMORY and OFF no journal
// file stands beside the database while a writer extends it. Every
// backup must succeed (a busy source is no reason to fail), and every
// backup the tool calls ok must hold a state
// the writers committed: each writer's rows a gapless prefix 1..n with
// every payload exact, byte for byte, balances summing to the constant
// every transfer keeps; the C sqlite3 CLI must find it sound; and each
// backup holds no fewer rows than the one before. STRESS=full (or
// SQLITE_BACKUP_STRESS=full) runs every page size from 512 to 65536 and
// many more backups.
func TestTortureCopier(t *testing.T) {
	if testing.Short() {
		t.Skip("torture: skipped with -short")
	}
	full := stressFull() || os.Getenv("STRESS") == "full"
	cases := tortureCases()
	backups := 6
	if full {
		backups = 25
		var more []tortureCase
		for _, c := range cases {
			for ps := 512; ps <= 65536; ps *= 2 {
				if ps != c.pageSize {
					m := c
					m.pageSize = ps
					m.name = fmt.Sprintf("%s, %d-byte pages", c.name, ps)
					more = append(more, m)
				}
			}
		}
		cases = append(cases, more...)
	}
	tortureAll(t, cases, backups)
}

// TestTortureIncremental is TestTortureCopier with --incremental: every
// point of every chain, full or increment, taken while the writers run
// and disturb the database, materializes (restore POINT --to) to a
// database that passes the writers' invariants and the C CLI's
// integrity_check, each holding no fewer rows than the point before.
func TestTortureIncremental(t *testing.T) {
	if testing.Short() {
		t.Skip("torture: skipped with -short")
	}
	full := stressFull() || os.Getenv("STRESS") == "full"
	var cases []tortureCase
	for _, c := range tortureCases() {
		c.incremental = true
		cases = append(cases, c)
	}
	backups := 8
	if full {
		backups = 30
	}
	tortureAll(t, cases, backups)
}

func tortureAll(t *testing.T, cases []tortureCase, backups int) {
	total, copiers := 0, map[string]int{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := backups
			if c.journal != "" {
				// A backup meets a writer's commit in mid-write only
				// now and then: more tries.
				n *= 2
			}
			n, by := torture(t, c, n)
			total += n
			for k, v := range by {
				copiers[k] += v
			}
		})
	}
	t.Logf("%d scenarios, %d backups judged ok and found whole; copied by: %v", len(cases), total, copiers)
}

// tortureCases are the scenarios of the torture tests.
func tortureCases() []tortureCase {
	return []tortureCase{
		{name: "one writer, checkpoints", pageSize: 512, writers: 1, chaos: "ckpt", autoVacuum: "NONE"},
		{name: "two writers, checkpoints and reopening", pageSize: 1024, writers: 2, chaos: "ckpt,reopen", autoVacuum: "NONE"},
		{name: "four writers, VACUUM, auto_vacuum", pageSize: 4096, writers: 4, chaos: "ckpt,reopen,vacuum", autoVacuum: "FULL"},
		{name: "WAL and DELETE switching", pageSize: 8192, writers: 1, chaos: "mode,reopen,ckpt", autoVacuum: "NONE"},
		{name: "WAL and DELETE switching, two writers", pageSize: 32768, writers: 2, chaos: "mode,reopen,ckpt,vacuum", autoVacuum: "NONE"},
		{name: "incremental shrinking, big pages", pageSize: 65536, writers: 3, chaos: "ckpt,shrink", autoVacuum: "INCREMENTAL"},
		{name: "link with stale sidecars holding frames", pageSize: 4096, writers: 2, chaos: "ckpt,reopen", autoVacuum: "NONE", link: "stale frames"},
		{name: "link with a stale empty index", pageSize: 1024, writers: 3, chaos: "ckpt", autoVacuum: "NONE", link: "stale empty"},
		{name: "link, nothing beside it", pageSize: 16384, writers: 1, chaos: "reopen,ckpt", autoVacuum: "NONE", link: "clean"},
		{name: "read-only -shm as nobody", pageSize: 2048, writers: 2, chaos: "ckpt", autoVacuum: "NONE", nobody: true},
		{name: "journal_mode=DELETE", pageSize: 4096, writers: 2, chaos: "reopen,grow", autoVacuum: "FULL", journal: "DELETE"},
		{name: "journal_mode=TRUNCATE", pageSize: 1024, writers: 1, chaos: "reopen,vacuum", autoVacuum: "NONE", journal: "TRUNCATE"},
		{name: "journal_mode=PERSIST", pageSize: 2048, writers: 2, chaos: "shrink", autoVacuum: "INCREMENTAL", journal: "PERSIST"},
		{name: "journal_mode=MEMORY", pageSize: 4096, writers: 2, chaos: "reopen,grow", autoVacuum: "FULL", journal: "MEMORY"},
		{name: "journal_mode=OFF", pageSize: 4096, writers: 2, chaos: "grow", autoVacuum: "FULL", journal: "OFF"},
		{name: "journal_mode=OFF, vacuum and shrinking", pageSize: 1024, writers: 1, chaos: "vacuum,shrink", autoVacuum: "INCREMENTAL", journal: "OFF"},
		{name: "journal_mode=WAL", pageSize: 4096, writers: 2, chaos: "reopen,grow,ckpt", autoVacuum: "FULL", journal: "WAL"},
	}
}

func torture(t *testing.T, c tortureCase, backups int) (int, map[string]int) {
	var dir string
	var bin string
	var o runOpts
	if c.nobody {
		var cred *syscall.Credential
		bin, cred = asNobody(t)
		dir = publicTempDir(t)
		o.cred = cred
	} else {
		dir = t.TempDir()
		bin = toolPath(t)
	}
	db := filepath.Join(dir, "app.db")
	cli3(t, db, tortureSchema(c.pageSize, c.autoVacuum))
	if c.journal != "" && c.journal != "WAL" {
		cli3(t, db, "PRAGMA journal_mode=DELETE")
	}
	source := db
	if c.link != "" {
		source = linkedSource(t, db, c.link)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, 0o777)

	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	var writers []*exec.Cmd
	var outs, errs []*strings.Builder
	for k := 1; k <= c.writers; k++ {
		ready := filepath.Join(dir, fmt.Sprintf("ready%d", k))
		cmd := exec.Command(writer, "-torture", strconv.Itoa(k), "-chaos", c.chaos, "-ready", ready, db)
		if c.journal != "" {
			cmd.Env = append(os.Environ(), "TORTURE_JOURNAL_MODE="+c.journal)
		}
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, cmd)
		outs, errs = append(outs, &so), append(errs, &se)
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
			if t.Failed() && se.Len() > 0 {
				t.Logf("writer %d stderr: %s", k, se.String())
			}
		})
		waitFile(t, ready, 30*time.Second)
	}
	if c.nobody {
		// The writers run as root: their -shm is 0644, which nobody may
		// read but not write (SQLite's read-only -shm mode).
		if fi, err := os.Stat(db + "-shm"); err == nil && fi.Mode().Perm()&0o002 != 0 {
			t.Fatalf("-shm is %v: writable by nobody", fi.Mode())
		}
	}

	copiers := map[string]int{}
	var paths []string
	for i := range backups {
		args := []string{"--source", source, "--backup-dir", out, "--busy-timeout", "20s", "--keep", "0", "--json"}
		if c.incremental {
			args = append(args, "--incremental", "--full-every", "4", "--check-every", "0")
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = toolEnv(nil)
		if o.cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
		}
		r := runCmd(t, cmd)
		if r.code != 0 {
			t.Fatalf("backup %d: exit %d\n%s", i+1, r.code, r.stderr)
		}
		var res struct {
			Path    string `json:"path"`
			OK      bool   `json:"ok"`
			Check   string `json:"check"`
			Copier  string `json:"copier"`
			Skipped string `json:"file_copy_skipped"`
			Kind    string `json:"kind"`
		}
		oneResult(t, r.stdout, &res)
		if !res.OK || res.Check != "integrity_check" {
			t.Fatalf("backup %d: not checked with integrity_check: %s", i+1, r.stdout)
		}
		paths = append(paths, res.Path)
		why := res.Skipped
		if i := strings.IndexAny(why, "0123456789\""); i > 0 {
			why = why[:i] // numbers and paths vary
		}
		copiers[strings.TrimSpace(res.Copier+" "+why)]++
		if c.incremental {
			copiers[res.Kind]++
		}
		time.Sleep(50 * time.Millisecond)
	}

	counts := make([]int64, c.writers)
	for k, cmd := range writers {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer %d: %v (a failed commit is fatal to it)", k+1, err)
		}
		counts[k], err = strconv.ParseInt(strings.TrimSpace(outs[k].String()), 10, 64)
		if err != nil {
			t.Fatalf("writer %d printed %q", k+1, outs[k].String())
		}
	}
	for _, se := range errs {
		for _, line := range strings.Split(se.String(), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "chaos" {
				for i := 1; i+1 < len(f); i += 2 {
					v, _ := strconv.Atoi(f[i+1])
					copiers["chaos "+f[i]] += v
				}
			}
		}
	}
	prev := make([]int64, c.writers)
	for i, p := range paths {
		if c.incremental {
			// The point as restore materializes it from its chain.
			m := filepath.Join(t.TempDir(), "point.db")
			if r := runBin(t, runOpts{}, "restore", p, "--to", m); r.code != 0 {
				t.Fatalf("backup %d: restore %s: exit %d\n%s%s", i+1, p, r.code, r.stdout, r.stderr)
			}
			p = m
		}
		if got := cli3(t, p, "PRAGMA integrity_check"); got != "ok\n" {
			t.Errorf("backup %d: sqlite3 integrity_check: %q", i+1, got)
		}
		got := tortureInvariants(t, p, c.writers)
		for k := range c.writers {
			if got[k] < prev[k] {
				t.Errorf("backup %d: writer %d has %d rows, the backup before had %d", i+1, k+1, got[k], prev[k])
			}
		}
		prev = got
	}
	final := tortureInvariants(t, db, c.writers)
	for k := range c.writers {
		if final[k] != counts[k] {
			t.Errorf("source: writer %d has %d rows, it reported %d commits", k+1, final[k], counts[k])
		}
	}
	t.Logf("%d backups, rows per writer %v, copied by %v", len(paths), counts, copiers)
	if c.link != "" && copiers["file"] < len(paths)/2 {
		// SQLite's own files are the ones read: a link is no reason to
		// leave the fast copy.
		t.Errorf("symlinked source: only %d of %d backups used the file copy: %v", copiers["file"], len(paths), copiers)
	}
	return len(paths), copiers
}

// tortureInvariants checks the writers' invariants in the database at
// path and returns each writer's row count.
func tortureInvariants(t *testing.T, path string, writers int) []int64 {
	t.Helper()
	d := openJudged(t, path)
	defer d.Close()
	var sum, accounts int64
	if err := d.QueryRow("SELECT sum(bal), count(*) FROM acct").Scan(&sum, &accounts); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if sum != tortureTotal || accounts != tortureAccounts {
		t.Errorf("%s: %d accounts with balances summing to %d, want %d and %d (a torn snapshot)", path, accounts, sum, tortureAccounts, tortureTotal)
	}
	rows, err := d.Query("SELECT w, count(*), coalesce(max(seq), 0), sum(v IS NOT " + tortureVSQL + ") FROM log GROUP BY w")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer rows.Close()
	got := make([]int64, writers)
	for rows.Next() {
		var w, count, max, bad int64
		if err := rows.Scan(&w, &count, &max, &bad); err != nil {
			t.Fatal(err)
		}
		if w < 1 || w > int64(writers) {
			t.Errorf("%s: rows of unknown writer %d", path, w)
			continue
		}
		if count != max {
			t.Errorf("%s: writer %d: %d rows, max seq %d: not a gapless prefix (a torn snapshot)", path, w, count, max)
		}
		if bad != 0 {
			t.Errorf("%s: writer %d: %d rows whose payload is not what was written", path, w, bad)
		}
		got[w-1] = count
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// linkedSource moves the database behind a symbolic link in another
// directory and returns the link. With a stale kind, the -wal and -shm
// of an older state of the database (with frames not checkpointed, or
// none) are left beside the link, as after a move that left them.
func linkedSource(t *testing.T, db string, kind string) string {
	t.Helper()
	linkDir := filepath.Join(filepath.Dir(db), "old")
	if err := os.Mkdir(linkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(linkDir, "app.db")
	if kind != "clean" {
		conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		conn.SetMaxOpenConns(1)
		for _, q := range []string{"PRAGMA wal_autocheckpoint=0", "PRAGMA wal_checkpoint(TRUNCATE)",
			"UPDATE acct SET bal = bal - 500 WHERE id = 1", "UPDATE acct SET bal = bal + 500 WHERE id = 2",
			"INSERT INTO filler SELECT randomblob(1000) FROM acct"} {
			if _, err := conn.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if kind == "stale empty" {
			if _, err := conn.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []string{"-wal", "-shm"} {
			b, err := os.ReadFile(db + s)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(link+s, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// Undone, so the balances are as the schema made them.
		for _, q := range []string{"UPDATE acct SET bal = bal + 500 WHERE id = 1", "UPDATE acct SET bal = bal - 500 WHERE id = 2", "DELETE FROM filler"} {
			if _, err := conn.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		conn.Close()
	}
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// TestTortureHotJournal: a writer killed in mid-transaction, after its
// journal was synced and some of its pages spilled into the file,
// leaves a hot journal and a half-written file. A backup, which never
// writes to the source, must not copy it: it fails (exit 1), says what
// happened and what to do (the application's open, or sqlite3 as the
// owner, rolls the journal back), never to delete the journal, and
// leaves the journal and no backup. Once rolled back, the backup is ok
// and the invariants hold.
func TestTortureHotJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("torture: skipped with -short")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	out := filepath.Join(dir, "out")
	cli3(t, db, tortureSchema(4096, "NONE"), "PRAGMA journal_mode=DELETE")
	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(writer, "-torture", "1", "-max", "400", db).CombinedOutput(); err != nil {
		t.Fatalf("writer: %v\n%s", err, b)
	}
	killInTransaction(t, db, "PRAGMA cache_size=5;\nBEGIN;\nUPDATE acct SET bal = bal + 7;\nUPDATE log SET v = upper(v) || 'x';\n")
	for _, method := range []string{"backup", "vacuum"} {
		r := runBin(t, runOpts{dir: dir}, "--source", db, "--backup-dir", out, "--method", method)
		if r.code != 1 || !strings.Contains(r.stderr, "must be rolled back") ||
			!strings.Contains(r.stderr, "hint: do not delete the journal") || !strings.Contains(r.stderr, `"PRAGMA quick_check"`) {
			t.Fatalf("method %s: exit %d, want 1 saying the journal must be rolled back and how:\n%s%s", method, r.code, r.stdout, r.stderr)
		}
		if got := backupsIn(t, out); len(got) != 0 {
			t.Fatalf("method %s: backups published from a half-written file: %v", method, got)
		}
	}
	if _, err := os.Stat(db + "-journal"); err != nil {
		t.Fatalf("the journal is gone: %v", err)
	}
	cli3(t, db, "PRAGMA quick_check") // what the hint says: the owner's open rolls it back
	r := runBin(t, runOpts{dir: dir}, "--source", db, "--backup-dir", out, "--json")
	if r.code != 0 {
		t.Fatalf("after the rollback: exit %d\n%s", r.code, r.stderr)
	}
	var res struct{ Path string }
	oneResult(t, r.stdout, &res)
	if got := tortureInvariants(t, res.Path, 1); got[0] != 400 {
		t.Fatalf("backup holds %d rows of writer 1, want 400", got[0])
	}
}

// killInTransaction starts the C CLI on db, feeds it script (a
// transaction left open, large enough to spill pages into the file) and
// kills it with SIGKILL once its journal is synced and it spills.
func killInTransaction(t *testing.T, db, script string) {
	t.Helper()
	w := exec.Command("sqlite3", "-batch", db)
	in, err := w.StdinPipe() // left open: the transaction waits for more
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write([]byte(script)); err != nil {
		t.Fatal(err)
	}
	synced := func() bool { // the header's magic is written once the journal is synced
		f, err := os.Open(db + "-journal")
		if err != nil {
			return false
		}
		defer f.Close()
		var b [1]byte
		_, err = f.ReadAt(b[:], 0)
		return err == nil && b[0] == 0xd9
	}
	for deadline := time.Now().Add(time.Minute); !synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			w.Process.Kill()
			w.Wait()
			t.Fatal("the writer never synced its journal")
		}
	}
	time.Sleep(300 * time.Millisecond) // into the spill
	w.Process.Kill()
	w.Wait()
}
