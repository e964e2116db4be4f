package systest

import (
	"bufio"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the real binary and real helper processes, found on
// $PATH through testscript.Main in TestMain; the C sqlite3 CLI is the
// independent judge of what is in a database.

func sqlite3Out(t *testing.T, db string, args ...string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", append([]string{db}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("sqlite3 %s %q: %v\n%s", db, args, err, ee.Stderr)
		}
		t.Fatalf("sqlite3 %s %q: %v", db, args, err)
	}
	return strings.TrimSpace(string(out))
}

func runTool(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("sqlite-backup", args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run sqlite-backup: %v", err)
	}
	return o.String(), e.String(), code
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cliSession is a sqlite3 CLI process holding a database open, fed
// statements on stdin: an idle reader, or a writer holding a lock.
type cliSession struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startCLI(t *testing.T, db string) *cliSession {
	t.Helper()
	cmd := exec.Command("sqlite3", "-batch", db)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &cliSession{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return s
}

// query sends one statement and returns its one-line answer.
func (s *cliSession) query(t *testing.T, sql string) string {
	t.Helper()
	if _, err := io.WriteString(s.in, sql+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := s.out.ReadString('\n')
	if err != nil {
		t.Fatalf("sqlite3 session: %q: %v", sql, err)
	}
	return strings.TrimSpace(line)
}

type restoreResultJSON struct {
	OK          bool   `json:"ok"`
	Mode        string `json:"mode"`
	Holders     []int  `json:"holders"`
	SafetyCopy  string `json:"safety_copy"`
	SafetyCheck string `json:"safety_copy_check"`
	JournalMode string `json:"journal_mode"`
	Check       string `json:"check"`
}

// TestRestoreOnline restores into a WAL database that a reader process
// holds open while a writer process keeps committing: the restore goes
// online by itself, both keep working, and the database then holds the
// backup's rows plus only what the writer committed after the restore.
func TestRestoreOnline(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	bk := filepath.Join(dir, "app.bak")
	if out, err := exec.Command("sqlwriter", "-max", "300", db).CombinedOutput(); err != nil {
		t.Fatalf("sqlwriter: %v\n%s", err, out)
	}
	if _, e, code := runTool(t, "--source", db, "--backup", bk); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, e)
	}
	wantRows := sqlite3Out(t, bk, "select id, hex(v) from w order by id")

	ready := filepath.Join(dir, "ready")
	writer := exec.Command("sqlwriter", "-ready", ready, db)
	var wout, werr strings.Builder
	writer.Stdout, writer.Stderr = &wout, &werr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })
	reader := startCLI(t, db)
	if got := reader.query(t, "select count(*) >= 300 from w;"); got != "1" {
		t.Fatalf("reader: %q", got)
	}
	waitFor(t, "the writer", func() bool { _, err := os.Stat(ready); return err == nil })
	count := func(where string) int {
		n, err := strconv.Atoi(sqlite3Out(t, db, "select count(*) from w where "+where))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "100 rows after the backup", func() bool { return count("id > 300") >= 100 })
	before, _ := strconv.Atoi(sqlite3Out(t, db, "select max(id) from w"))

	// --offline is refused while they have it open, and changes nothing.
	_, e, code := runTool(t, "restore", bk, "--to", db, "--force", "--offline")
	if code != 1 || !strings.Contains(e, "has it open") && !strings.Contains(e, "have it open") || !strings.Contains(e, "hint: ") || !strings.Contains(e, "--online") {
		t.Fatalf("restore --offline with holders: exit %d, want 1 with a hint to --online\n%s", code, e)
	}

	out, e, code := runTool(t, "restore", bk, "--to", db, "--force", "--json")
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, e)
	}
	var res restoreResultJSON
	oneResult(t, out, &res)
	if res.Mode != "online" || len(res.Holders) < 2 || res.JournalMode != "wal" || res.Check != "integrity_check" || !res.OK || res.SafetyCheck != "ok" {
		t.Fatalf("restore result: %+v, want online, both holders, wal, checked", res)
	}

	// The application keeps going on the restored database.
	waitFor(t, "the writer to commit after the restore", func() bool { return count("id > "+strconv.Itoa(before)) >= 50 })
	if got := reader.query(t, "select count(*) from w where id <= 300;"); got != "300" {
		t.Fatalf("reader after restore sees %s rows of the backup, want 300", got)
	}
	writer.Process.Signal(syscall.SIGTERM)
	if err := writer.Wait(); err != nil {
		t.Fatalf("writer failed during the restore: %v\n%s", err, werr.String())
	}

	if got := sqlite3Out(t, db, "pragma integrity_check"); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
	if got := sqlite3Out(t, db, "select id, hex(v) from w where id <= 300 order by id"); got != wantRows {
		t.Fatal("rows 1..300 differ from the backup")
	}
	// What was committed between the backup and the restore is gone: the
	// backup replaced it.
	if n := count("id > 300 and id <= " + strconv.Itoa(before)); n != 0 {
		t.Fatalf("%d rows committed before the restore survived it", n)
	}
	// ... and kept in the safety copy.
	if got := sqlite3Out(t, res.SafetyCopy, "select count(*) >= "+strconv.Itoa(before)+" from w; pragma integrity_check"); got != "1\nok" {
		t.Fatalf("safety copy %s: %q", res.SafetyCopy, got)
	}
}

// TestRestoreOnlineBusy: an application holding a write lock longer than
// --busy-timeout gets a clear error (exit 1) and keeps its database.
func TestRestoreOnlineBusy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	bk := filepath.Join(dir, "app.bak")
	sqlite3Out(t, db, "pragma journal_mode=wal; create table t(x); insert into t values (1)")
	if _, e, code := runTool(t, "--source", db, "--backup", bk); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, e)
	}
	app := startCLI(t, db)
	if got := app.query(t, "begin immediate; insert into t values (2); select count(*) from t;"); got != "2" {
		t.Fatalf("app: %q", got)
	}
	_, e, code := runTool(t, "restore", bk, "--to", db, "--force", "--online", "--busy-timeout", "300ms")
	if code != 1 || !strings.Contains(e, "database is locked") || !strings.Contains(e, "hint: wait longer for the writer: --busy-timeout") {
		t.Fatalf("restore against a held write lock: exit %d, want 1 with a busy-timeout hint\n%s", code, e)
	}
	if got := app.query(t, "commit; select count(*) from t;"); got != "2" {
		t.Fatalf("app after the refused restore: %q rows, want 2", got)
	}
}

// TestRestoreSIGKILL kills an offline restore over a WAL database whose
// -wal holds committed frames, at random moments, 20 times. Every time
// the database must then be either exactly the old one (including the
// -wal's transactions) or exactly the backup, as the C sqlite3 sees it.
func TestRestoreSIGKILL(t *testing.T) {
	base := t.TempDir()
	tmpl := filepath.Join(base, "tmpl.db")
	bk := filepath.Join(base, "app.bak")
	// Big enough (about 8 MB) that the restore takes a while to kill.
	sqlite3Out(t, tmpl, "pragma journal_mode=wal; create table w(id integer primary key, v blob); insert into w select value, randomblob(2000) from generate_series(1, 4000);")
	if _, e, code := runTool(t, "--source", tmpl, "--backup", bk); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, e)
	}
	newSum := sqlite3Out(t, bk, ".sha3sum")

	// setup makes dir/app.db: the template plus transactions that exist
	// only in its -wal, as an application killed without a checkpoint
	// leaves them. It returns the content hash of that old database.
	setup := func(dir string) (string, string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, "app.db")
		b, err := os.ReadFile(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// A checkpointed change, then changes only in the -wal: the file
		// alone is then neither the old database nor the backup.
		sqlite3Out(t, db, "insert into w select value, randomblob(100) from generate_series(4001, 4100)")
		sqlite3Out(t, db, ".dbconfig no_ckpt_on_close on", "pragma wal_autocheckpoint=0",
			"update w set v = zeroblob(2000) where id % 3 = 0; delete from w where id > 3000; create table walonly(x); insert into walonly values (1);")
		if fi, err := os.Stat(db + "-wal"); err != nil || fi.Size() == 0 {
			t.Fatalf("setup: no -wal frames: %v", err)
		}
		// Hash the old state on a copy, so the original keeps its -wal.
		cp := filepath.Join(dir, "oldcopy")
		os.MkdirAll(cp, 0o755)
		for _, s := range []string{"", "-wal"} {
			b, err := os.ReadFile(db + s)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cp, "app.db"+s), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return db, sqlite3Out(t, filepath.Join(cp, "app.db"), ".sha3sum")
	}

	// One uninterrupted run tells how long a restore takes here.
	db, oldSum := setup(filepath.Join(base, "timing"))
	if oldSum == newSum {
		t.Fatal("old and new databases are the same; the test could not tell them apart")
	}
	start := time.Now()
	if _, e, code := runTool(t, "restore", bk, "--to", db, "--force", "--offline"); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, e)
	}
	full := time.Since(start)
	if got := sqlite3Out(t, db, ".sha3sum"); got != newSum {
		t.Fatalf("uninterrupted restore: content differs from the backup")
	}

	var old, restored int
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := range 20 {
		dir := filepath.Join(base, "run"+strconv.Itoa(i))
		db, oldSum := setup(dir)
		delay := time.Duration(r.Int64N(int64(full) * 6 / 5))
		cmd := exec.Command("sqlite-backup", "restore", bk, "--to", db, "--force", "--offline")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()

		if got := sqlite3Out(t, db, "pragma integrity_check"); got != "ok" {
			t.Fatalf("run %d, killed after %v: integrity_check: %s", i, delay, got)
		}
		outcome := "old"
		switch sqlite3Out(t, db, ".sha3sum") {
		case oldSum:
			old++
		case newSum:
			restored++
			outcome = "restored"
		default:
			ls, _ := exec.Command("ls", "-la", dir).Output()
			t.Fatalf("run %d, killed after %v: the database is neither the old one nor the backup\n%s", i, delay, ls)
		}
		t.Logf("run %2d: killed after %-12v -> %s", i, delay.Round(time.Microsecond), outcome)
	}
	t.Logf("uninterrupted restore took %v; of 20 killed runs %d left the old database, %d the restored one", full.Round(time.Millisecond), old, restored)

	// A killed run's temp file is removed by the next run in the directory.
	last := filepath.Join(base, "run19")
	if _, e, code := runTool(t, "restore", bk, "--to", filepath.Join(last, "app.db"), "--force"); code != 0 {
		t.Fatalf("restore after the kills: exit %d\n%s", code, e)
	}
	for i := range 20 {
		m, _ := filepath.Glob(filepath.Join(base, "run"+strconv.Itoa(i), ".sqlite-backup-tmp-*"))
		if i == 19 && len(m) > 0 {
			t.Fatalf("temp files left after a completed run: %v", m)
		}
	}
}

// TestRestoreNamesHolders: an online restore over a database that other
// processes hold open names each of them, pid and command, in its
// output (text and --json), as --dry-run does; a busy one names them in
// its error.
func TestRestoreNamesHolders(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	bk := filepath.Join(dir, "app.bak")
	sqlite3Out(t, db, "pragma journal_mode=wal; create table t(x); insert into t values (1)")
	if _, e, code := runTool(t, "--source", db, "--backup", bk); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, e)
	}
	app := startCLI(t, db)
	if got := app.query(t, "select count(*) from t;"); got != "1" {
		t.Fatalf("app: %q", got)
	}
	named := "pid " + strconv.Itoa(app.cmd.Process.Pid) + " (sqlite3)"

	out, e, code := runTool(t, "restore", bk, "--to", db, "--force", "--dry-run")
	if code != 0 || !strings.Contains(out, "(open by "+named+")") {
		t.Fatalf("dry run: exit %d, want %q named\n%s%s", code, named, out, e)
	}
	out, e, code = runTool(t, "restore", bk, "--to", db, "--force")
	if code != 0 || !strings.Contains(out, "open by "+named+": copied into the live database\n") || !strings.Contains(out, "(online, journal_mode wal)") {
		t.Fatalf("restore: exit %d, want %q named\n%s%s", code, named, out, e)
	}
	out, e, code = runTool(t, "restore", bk, "--to", db, "--force", "--json")
	var res struct {
		HolderProcesses []struct {
			PID     int    `json:"pid"`
			Command string `json:"command"`
		} `json:"holder_processes"`
	}
	oneResult(t, out, &res)
	if code != 0 || len(res.HolderProcesses) != 1 || res.HolderProcesses[0].PID != app.cmd.Process.Pid || res.HolderProcesses[0].Command != "sqlite3" {
		t.Fatalf("restore --json: exit %d, holder_processes %+v\n%s", code, res.HolderProcesses, e)
	}

	// Holding the write lock past --busy-timeout: the error says whose.
	if got := app.query(t, "begin immediate; insert into t values (2); select count(*) from t;"); got != "2" {
		t.Fatalf("app: %q", got)
	}
	_, e, code = runTool(t, "restore", bk, "--to", db, "--force", "--busy-timeout", "200ms")
	if code != 1 || !strings.Contains(e, "database is locked") || !strings.Contains(e, "open by "+named) {
		t.Fatalf("restore against a held write lock: exit %d, want 1 naming %q\n%s", code, named, e)
	}
	app.query(t, "commit; select 1;")
}

// TestRestoreSpace: on a real small file system (tmpfs) holding the
// database, a restore that would not fit is refused before it writes a
// byte, with the numbers: an online restore of a compressed backup
// needs room for the decompressed copy, the safety copy and the -wal at
// once. --dry-run says the same. Without the application the offline
// restore needs no -wal, fits, and goes through.
func TestRestoreSpace(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src.db")
	// Random blobs: zstd cannot shrink them, the decompressed size is
	// about the compressed one.
	sqlite3Out(t, src, "pragma journal_mode=wal; create table t(id integer primary key, v blob); insert into t(v) select randomblob(3000) from generate_series(1, 700);")
	bdir := filepath.Join(base, "bk")
	if _, e, code := runTool(t, "--source", src, "--backup-dir", bdir, "--compress", "zstd"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, e)
	}
	bks, _ := filepath.Glob(filepath.Join(bdir, "src.db.*.zst"))
	if len(bks) != 1 {
		t.Fatalf("backups: %v", bks)
	}
	bk := bks[0]
	size := fileSize(t, src)

	// Room for the database and a bit over twice its size more.
	mnt := mountTmpfs(t, filepath.Join(base, "data"), 3*size+size/4)
	db := filepath.Join(mnt, "app.db")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sqlite3Out(t, db, "delete from t where id > 10")
	oldSum := sqlite3Out(t, db, ".sha3sum")
	app := startCLI(t, db)
	if got := app.query(t, "select count(*) from t;"); got != "10" {
		t.Fatalf("app: %q", got)
	}
	listing := func() string {
		ents, _ := os.ReadDir(mnt)
		var n []string
		for _, e := range ents {
			if e.Name() != ".sqlite-backup.lock" { // an empty file, every run's
				n = append(n, e.Name())
			}
		}
		return strings.Join(n, " ")
	}
	before := listing()

	for _, dry := range []bool{true, false} {
		args := []string{"restore", bk, "--to", db, "--force"}
		if dry {
			args = append(args, "--dry-run")
		}
		_, e, code := runTool(t, args...)
		for _, want := range []string{"not enough free space in \"" + mnt + "\"", "decompressed backup ", "safety copy ", "-wal of the copy into the live database ", " is free; nothing was changed", "hint: free ", "offline restore needs no -wal"} {
			if code != 1 || !strings.Contains(e, want) {
				t.Fatalf("restore %q on a small disk: exit %d, want 1 and %q\n%s", args, code, want, e)
			}
		}
		if got := listing(); got != before {
			t.Fatalf("refused restore left %q, before %q", got, before)
		}
	}
	if got := app.query(t, "select count(*) from t;"); got != "10" {
		t.Fatalf("app after the refused restore: %q", got)
	}
	if got := sqlite3Out(t, db, ".sha3sum"); got != oldSum {
		t.Fatal("the refused restore changed the database")
	}

	// The application stops: offline, the decompressed copy is renamed
	// into place, so only it and the safety copy need room.
	app.in.Close()
	app.cmd.Wait()
	out, e, code := runTool(t, "restore", bk, "--to", db, "--force")
	if code != 0 || !strings.Contains(out, "(offline, journal_mode wal)") {
		t.Fatalf("offline restore on the small disk: exit %d\n%s%s", code, out, e)
	}
	if got := sqlite3Out(t, db, "pragma integrity_check; select count(*) from t"); got != "ok\n700" {
		t.Fatalf("restored: %q", got)
	}
}

// TestRestoreOwner: a restore over a database of another user (nobody,
// mode 0640) keeps its owner, group and mode, offline and online, and
// the -wal and -shm of the live database stay the application's; a new
// database in a directory of that user's becomes theirs. The
// application runs as that user.
func TestRestoreOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to chown")
	}
	const uid, gid = 65534, 65534
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(base, "app.bak")
	sqlite3Out(t, bk, "create table t(x); insert into t values (1), (2), (3)")
	db := filepath.Join(data, "app.db")
	sqlite3Out(t, db, "pragma journal_mode=wal; create table t(x); insert into t values (9)")
	if err := os.Chown(db, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o640); err != nil {
		t.Fatal(err)
	}
	owned := func(what, p string, mode os.FileMode) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if st.Uid != uid || st.Gid != gid || (mode != 0 && os.FileMode(st.Mode).Perm() != mode) {
			t.Fatalf("%s: %s is %d:%d mode %04o, want %d:%d mode %04o", what, p, st.Uid, st.Gid, os.FileMode(st.Mode).Perm(), uid, gid, mode)
		}
	}

	// Offline: nobody has it open.
	if out, e, code := runTool(t, "restore", bk, "--to", db, "--force", "--offline"); code != 0 {
		t.Fatalf("offline restore: exit %d\n%s%s", code, out, e)
	}
	owned("after the offline restore", db, 0o640)
	if got := sqlite3Out(t, db, "select count(*) from t; pragma journal_mode"); got != "3\nwal" {
		t.Fatalf("restored: %q", got)
	}

	// Online: the application, running as nobody, holds it open.
	cmd := exec.Command("sqlite3", "-batch", db)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	app := &cliSession{cmd: cmd, in: in, out: bufio.NewReader(outp)}
	if got := app.query(t, "insert into t values (4); select count(*) from t;"); got != "4" {
		t.Fatalf("app as nobody: %q", got)
	}
	out, e, code := runTool(t, "restore", bk, "--to", db, "--force")
	if code != 0 || !strings.Contains(out, "(online, journal_mode wal)") {
		t.Fatalf("online restore: exit %d\n%s%s", code, out, e)
	}
	owned("after the online restore", db, 0o640)
	owned("the -wal", db+"-wal", 0)
	owned("the -shm", db+"-shm", 0)
	if got := app.query(t, "insert into t values (5); select count(*) from t;"); got != "4" {
		t.Fatalf("app as nobody after the restore: %q rows, want the backup's 3 and its new one", got)
	}

	// A new database in nobody's directory is nobody's, 0600; no note.
	fresh := filepath.Join(data, "fresh.db")
	out, e, code = runTool(t, "restore", bk, "--to", fresh)
	if code != 0 || strings.Contains(e, "note:") || !strings.Contains(out, "new database "+fresh+": owner nobody:") {
		t.Fatalf("restore to a new path: exit %d\n%s%s", code, out, e)
	}
	owned("the new database", fresh, 0o600)
	if o, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sqlite3", fresh, "insert into t values (4); select count(*) from t").CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "4" {
		t.Fatalf("nobody writes the new database: %v %q", err, o)
	}
}
