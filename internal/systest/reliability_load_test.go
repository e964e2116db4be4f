package systest

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sqlite-backup/internal/format/sqlitefile"
)

const (
	loadWriters = 4
	loadTables  = 3
)

// TestLoadBackupsUnderWriters is scenario 1: four writer processes commit
// one row per transaction (monotonic ids per writer, three tables, rows
// from 40 bytes to 70 KB) to a WAL database while backups run back to
// back. Every backup must pass verification and hold, for every writer,
// exactly the ids 1..n (no torn snapshot), n never going backwards from
// one backup to the next; no writer may see a failed commit (5 s busy
// timeout). The writers' commit latencies, idle and during backups, are
// logged as figures, never asserted on.
//
// Then a few backups are killed with SIGKILL mid-run while the writers go
// on, and one more must be whole.
//
// SQLITE_BACKUP_STRESS=full runs 100 backups instead of 8, and 10 kills
// instead of 3.
func TestLoadBackupsUnderWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("load scenario: skipped with -short")
	}
	n := iterations(8, 100)
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	out := filepath.Join(dir, "out")
	cli3(t, db, multiWriterSchema(loadTables))

	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	var writers []*exec.Cmd
	var outs []*strings.Builder
	for k := 1; k <= loadWriters; k++ {
		cmd := exec.Command(writer, "-id", strconv.Itoa(k), "-tables", strconv.Itoa(loadTables), "-pause", "4ms",
			"-lat", filepath.Join(dir, fmt.Sprintf("lat%d", k)), "-ready", filepath.Join(dir, fmt.Sprintf("ready%d", k)), db)
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, cmd)
		outs = append(outs, &so)
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
			if se.Len() > 0 {
				t.Logf("writer %d stderr: %s", k, se.String())
			}
		})
	}
	for k := 1; k <= loadWriters; k++ {
		waitFile(t, filepath.Join(dir, fmt.Sprintf("ready%d", k)), 30*time.Second)
	}

	// Idle phase: the same writers, no backup running.
	idleStart := time.Now()
	time.Sleep(time.Duration(iterations(3, 20)) * time.Second)
	idleEnd := time.Now()

	var backupTimes []time.Duration
	var paths []string
	copiers := map[string]int{}
	busyStart := time.Now()
	for i := range n {
		t0 := time.Now()
		r := runBin(t, runOpts{dir: dir}, "--source", db, "--backup-dir", out, "--busy-timeout", "5s", "--keep", "0", "--json")
		backupTimes = append(backupTimes, time.Since(t0))
		if r.code != 0 {
			t.Fatalf("backup %d of %d: exit %d\n%s", i+1, n, r.code, r.stderr)
		}
		var res struct {
			Path    string `json:"path"`
			OK      bool   `json:"ok"`
			Copier  string `json:"copier"`
			Skipped string `json:"file_copy_skipped"`
		}
		if oneResult(t, r.stdout, &res); !res.OK {
			t.Fatalf("backup %d: stdout %q", i+1, r.stdout)
		}
		paths = append(paths, res.Path)
		copiers[res.Copier+" "+res.Skipped]++
	}
	busyEnd := time.Now()
	// The checks below are of the file copy mostly: under these writers
	// its snapshot may need a retry, rarely the backup API.
	t.Logf("copied by: %v", copiers)
	if copiers["file "] < n/2 {
		t.Errorf("only %d of %d backups used the file copy: %v", copiers["file "], n, copiers)
	}

	// Backups killed by SIGKILL while the writers go on: a reader that
	// dies holding its WAL read lock must not disturb them, and the next
	// backup must still be whole.
	kills := iterations(3, 10)
	med := backupTimes[len(backupTimes)/2]
	for i := range kills {
		cmd := command(t, runOpts{dir: dir}, "sqlite-backup", "--source", db, "--backup-dir", out, "--busy-timeout", "5s", "--keep", "0")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(med * time.Duration(i+1) / time.Duration(kills+1))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	r := runBin(t, runOpts{dir: dir}, "--source", db, "--backup-dir", out, "--busy-timeout", "5s", "--keep", "0", "--json")
	if r.code != 0 {
		t.Fatalf("backup after %d killed ones: exit %d\n%s", kills, r.code, r.stderr)
	}
	var after struct{ Path string }
	oneResult(t, r.stdout, &after)
	paths = append(paths, after.Path)
	if ts := tempsIn(t, out); len(ts) > 0 {
		t.Errorf("temp files left after the next normal run: %v", ts)
	}

	counts := make([]int64, loadWriters)
	for k, cmd := range writers {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer %d: %v (a failed commit is fatal to it)", k+1, err)
			continue
		}
		counts[k], err = strconv.ParseInt(strings.TrimSpace(outs[k].String()), 10, 64)
		if err != nil {
			t.Errorf("writer %d printed %q", k+1, outs[k].String())
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every backup file: the tool's own verify in one more process, then
	// the prefix check row by row.
	if r := runBin(t, runOpts{dir: dir}, append([]string{"verify"}, paths...)...); r.code != 0 {
		t.Fatalf("verify of the backups: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	prev := make([]int64, loadWriters)
	for i, p := range paths {
		got := writerPrefixes(t, p)
		for k := range loadWriters {
			if got[k] < prev[k] {
				t.Errorf("backup %d (%s): writer %d has %d rows, the backup before had %d", i+1, p, k+1, got[k], prev[k])
			}
		}
		prev = got
	}
	// The C CLI agrees on the last backup.
	if got := cli3(t, paths[len(paths)-1], "PRAGMA integrity_check"); got != "ok\n" {
		t.Errorf("sqlite3 integrity_check of the last backup: %q", got)
	}
	// And the source holds every commit the writers reported.
	final := writerPrefixes(t, db)
	for k := range loadWriters {
		if final[k] != counts[k] {
			t.Errorf("source: writer %d has %d rows, it reported %d commits", k+1, final[k], counts[k])
		}
	}

	idle, busy := latencies(t, dir, idleStart, idleEnd), latencies(t, dir, busyStart, busyEnd)
	slices.Sort(backupTimes)
	fi, _ := os.Stat(paths[len(paths)-1])
	report := fmt.Sprintf("load: %d writers, %d backups back to back, last backup %d KB, rows per writer %v\n"+
		"%-16s %8s %10s %10s %10s\n%s%s"+
		"backup wall time: p50 %v, max %v\n",
		loadWriters, n, fi.Size()/1024, counts,
		"commit latency", "commits", "p50", "p99", "max",
		idle.row("idle"), busy.row("during backups"),
		backupTimes[len(backupTimes)/2].Round(time.Millisecond), backupTimes[len(backupTimes)-1].Round(time.Millisecond))
	t.Log("\n" + report)
	if p := os.Getenv("SQLITE_BACKUP_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprint(f, report)
			f.Close()
		}
	}
}

// writerPrefixes checks that db holds, for every writer k, exactly the
// rows 1..n_k with the payload size that row was written with, and
// returns the n_k.
func writerPrefixes(t *testing.T, path string) []int64 {
	t.Helper()
	d := openJudged(t, path)
	defer d.Close()
	var union []string
	for i := range loadTables {
		union = append(union, fmt.Sprintf("SELECT w, seq, length(v) AS len, %s AS want FROM t%d", rowSizeSQL, i))
	}
	rows, err := d.QueryContext(context.Background(),
		"SELECT w, count(*), coalesce(max(seq),0), count(DISTINCT seq), sum(len != want) FROM ("+strings.Join(union, " UNION ALL ")+") GROUP BY w")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer rows.Close()
	got := make([]int64, loadWriters)
	for rows.Next() {
		var w, count, max, distinct, badLen int64
		if err := rows.Scan(&w, &count, &max, &distinct, &badLen); err != nil {
			t.Fatal(err)
		}
		if w < 1 || w > loadWriters {
			t.Errorf("%s: rows of unknown writer %d", path, w)
			continue
		}
		if count != max || distinct != count {
			t.Errorf("%s: writer %d: %d rows (%d distinct) but max id %d: not a prefix 1..n (torn snapshot)", path, w, count, distinct, max)
		}
		if badLen != 0 {
			t.Errorf("%s: writer %d: %d rows with a payload of the wrong size", path, w, badLen)
		}
		got[w-1] = max
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

type latencyStats struct {
	n             int
	p50, p99, max time.Duration
}

func (s latencyStats) row(name string) string {
	return fmt.Sprintf("%-16s %8d %10v %10v %10v\n", name, s.n,
		s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), s.max.Round(time.Microsecond))
}

// latencies reads every writer's latency file and summarises the commits
// that started within [from, to).
func latencies(t *testing.T, dir string, from, to time.Time) latencyStats {
	t.Helper()
	var ds []time.Duration
	for k := 1; k <= loadWriters; k++ {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("lat%d", k)))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var start, d int64
			if _, err := fmt.Sscan(sc.Text(), &start, &d); err != nil {
				t.Fatal(err)
			}
			if start >= from.UnixNano() && start < to.UnixNano() {
				ds = append(ds, time.Duration(d))
			}
		}
		f.Close()
	}
	if len(ds) == 0 {
		return latencyStats{}
	}
	slices.Sort(ds)
	pct := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	return latencyStats{n: len(ds), p50: pct(0.50), p99: pct(0.99), max: ds[len(ds)-1]}
}

// waitFile waits for a process to create p.
func waitFile(t *testing.T, p string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", p, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVerifyLiveRollbackDatabase: verify reads a file with no journal
// and no -shm without SQLite's locks (immutable, for speed and so that
// nothing is created beside it). An application that writes it in
// rollback-journal mode meanwhile changes pages under the check, which
// then reads them at different moments: the answer must be "changed, no
// verdict" (exit 1, with a hint), never FAILED for a sound database.
func TestVerifyLiveRollbackDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("load scenario: skipped with -short")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	copyFile(t, sharedBigDB(t), db, 0o644)
	cli3(t, db, multiWriterSchema(3), "PRAGMA journal_mode=DELETE")
	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	w := exec.Command(writer, "-id", "1", "-tables", "3", "-pause", "20ms", "-ready", ready, db)
	var wout, werr strings.Builder
	w.Stdout, w.Stderr = &wout, &werr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if w.ProcessState == nil {
			w.Process.Kill()
			w.Wait()
		}
	})
	waitFile(t, ready, 30*time.Second)

	// A run that starts while a commit's journal exists goes through
	// SQLite's locks (a consistent check, ok): try a few times.
	changed := false
	for attempt := 1; attempt <= 5 && !changed; attempt++ {
		r := runBin(t, runOpts{dir: dir}, "verify", db)
		switch {
		case r.code == 3 || strings.Contains(r.stdout, "FAILED"):
			t.Fatalf("a sound database in use was reported FAILED (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
		case r.code == 1 && strings.Contains(r.stderr, "the file changed while it was checked") && strings.Contains(r.stderr, "hint: "):
			changed = true
		case r.code == 0:
			t.Logf("attempt %d: ok (%s)", attempt, strings.TrimSpace(r.stdout))
		default:
			t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	if !changed {
		t.Fatal("no run noticed that the database changed during its check")
	}

	w.Process.Signal(syscall.SIGTERM)
	if err := w.Wait(); err != nil {
		t.Fatalf("writer: %v (a failed commit?)\n%s", err, werr.String())
	}
	// Quiet again, the same database passes.
	if r := runBin(t, runOpts{dir: dir}, "verify", db); r.code != 0 {
		t.Fatalf("verify of the quiet database: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyLockedDatabase: a database that another process holds locked
// (a rollback-journal writer inside its transaction) is not damaged:
// verify waits up to --busy-timeout, then says it is locked (exit 1,
// with a hint), never FAILED; a lock let go within the wait is waited out.
func TestVerifyLockedDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	cli3(t, db, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	hold := func(t *testing.T, d string) *exec.Cmd {
		ready := filepath.Join(t.TempDir(), "ready")
		h := exec.Command(writer, "-hold", d, "-ready", ready, db)
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if h.ProcessState == nil {
				h.Process.Signal(syscall.SIGTERM)
				h.Wait()
			}
		})
		waitFile(t, ready, 30*time.Second)
		return h
	}

	t.Run("held past the wait", func(t *testing.T) {
		h := hold(t, "10m")
		r := runBin(t, runOpts{dir: dir}, "verify", "--busy-timeout", "300ms", db)
		if r.code != 1 || strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stderr, "database is locked") || !strings.Contains(r.stderr, "hint: ") {
			t.Fatalf("exit %d, want 1 with a lock error and a hint:\n%s%s", r.code, r.stdout, r.stderr)
		}
		h.Process.Signal(syscall.SIGTERM)
		h.Wait()
	})
	t.Run("hot journal of a killed writer", func(t *testing.T) {
		// A transaction larger than its cache spills pages into the file
		// after syncing the journal: killed there, the file is half
		// written and only the journal's rollback makes it whole.
		hot := filepath.Join(t.TempDir(), "hot.db")
		cli3(t, hot, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c LIMIT 20000) INSERT INTO t SELECT randomblob(500) FROM c;")
		w := exec.Command("sqlite3", "-batch", hot)
		in, err := w.StdinPipe() // left open: the transaction waits for more
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(in, "PRAGMA cache_size=5;\nBEGIN;\nUPDATE t SET x=randomblob(500);\n"); err != nil {
			t.Fatal(err)
		}
		magic := func() bool { // written once the journal is synced
			f, err := os.Open(hot + "-journal")
			if err != nil {
				return false
			}
			defer f.Close()
			var b [1]byte
			_, err = f.ReadAt(b[:], 0)
			return err == nil && b[0] == 0xd9
		}
		deadline := time.Now().Add(time.Minute)
		for {
			if magic() {
				break
			}
			if time.Now().After(deadline) {
				w.Process.Kill()
				w.Wait()
				t.Fatal("the writer never synced its journal")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // into the spill
		w.Process.Kill()
		w.Wait()
		r := runBin(t, runOpts{dir: dir}, "verify", hot)
		if r.code != 1 || strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stderr, "must be rolled back") || !strings.Contains(r.stderr, "hint: do not delete the journal") {
			t.Fatalf("exit %d, want 1 saying the journal must be rolled back, with a hint:\n%s%s", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(hot + "-journal"); err != nil {
			t.Errorf("verify touched the journal: %v", err)
		}
		cli3(t, hot, "SELECT count(*) FROM t") // the rollback an application's open does
		if r := runBin(t, runOpts{dir: dir}, "verify", hot); r.code != 0 {
			t.Fatalf("after the rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("let go within the wait", func(t *testing.T) {
		hold(t, "1s")
		r := runBin(t, runOpts{dir: dir}, "verify", "--busy-timeout", "1m", db)
		if r.code != 0 || !strings.Contains(r.stdout, ": ok") {
			t.Fatalf("exit %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

// openJudged opens a source (app.db, read-only beside its writers) or a
// backup (standalone: immutable) for a test to judge what it holds.
func openJudged(t *testing.T, path string) *sql.DB {
	t.Helper()
	params := url.Values{"mode": {"ro"}}
	if !strings.HasSuffix(path, "app.db") {
		params.Set("immutable", "1") // a backup stands alone
	}
	uri, err := sqlitefile.URI(path, params)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sql.Open("sqlite", uri)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
