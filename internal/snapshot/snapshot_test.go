package snapshot

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func cli(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", db, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v: %s", db, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSnapshotUnderWriter checks that the file copy (the source's pages
// read from its files and its WAL under a pinned read transaction) yields
// one snapshot: a separate process (the C sqlite3 CLI) commits
// transaction i = 1, 2, 3, … each inserting row i into w and stamping a
// row of big, a table spread over many more pages than one chunk of the
// copy, while the copy is slowed down between chunks. The backup must
// hold exactly rows 1..N of w, big must carry stamps up to N and none
// beyond, and the copy must pass the C CLI's integrity_check.
func TestSnapshotUnderWriter(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("needs the sqlite3 CLI: scripts/install-deps.sh installs it")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	// About 6000 pages with 3000-byte rows: many chunks of the copy.
	stop := startStamper(t, src, 6000, "")
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for cli(t, src, "select count(*) from w") == "0" {
		if time.Now().After(deadline) {
			t.Fatal("writer made no commit in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	out := filepath.Join(dir, "copy.db")
	defer func(n int) { sendChunkBytes = n }(sendChunkBytes)
	sendChunkBytes = chunkBytes // many rounds of the kernel copy too
	steps := 0
	res, err := Run(context.Background(), Options{
		Source: src, Path: out, BusyTimeout: 5 * time.Second,
		Progress: func(done, total int) {
			steps++
			time.Sleep(300 * time.Millisecond) // let the writer commit mid-copy
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	during := cli(t, src, "select count(*) from w")
	stop()
	if steps < 2 {
		t.Fatalf("copy took %d step(s); the test needs several", steps)
	}
	if res.Verify != "ok" {
		t.Fatalf("verify = %q", res.Verify)
	}

	if got := cli(t, out, "pragma integrity_check"); got != "ok" {
		t.Fatalf("integrity_check of the copy: %s", got)
	}
	if got := cli(t, out, "pragma journal_mode"); got != "delete" {
		t.Fatalf("copy journal_mode = %q, want delete", got)
	}
	f := strings.Split(cli(t, out, "select count(*), coalesce(max(id), 0), coalesce(min(id), 0) from w"), "|")
	n, _ := strconv.Atoi(f[0])
	maxID, _ := strconv.Atoi(f[1])
	if n == 0 || n != maxID || f[2] != "1" {
		t.Fatalf("w in the copy: count %s, max %s, min %s: not a prefix 1..N", f[0], f[1], f[2])
	}
	if got := cli(t, out, "select max(stamp) from big"); got != f[1] {
		t.Fatalf("big's newest stamp is %s, w's newest row %s: the copy mixes two points in time", got, f[1])
	}
	total, _ := strconv.Atoi(during)
	if total <= n {
		t.Fatalf("the writer committed nothing during the copy (%d rows in the copy, %d after): the test proves nothing", n, total)
	}
	if res.Copier != CopierFile {
		t.Fatalf("copied by %s (%s): this test is of the file copy", res.Copier, res.FileCopySkipped)
	}
	t.Logf("copy holds rows 1..%d in %d steps; the writer had committed %d by the end", n, steps, total)
}

// TestSnapshotUnderCheckpointChurn runs backups back to back while a
// writer in another process commits with a checkpoint after every commit
// (wal_autocheckpoint=1), and each commit is a new sqlite3 process, so the
// WAL is checkpointed, restarted, and its -wal and -shm deleted and
// created anew all the time: every path of the file copy's snapshot
// reasoning (read-mark 0, read marks, retries, a replaced -shm) is hit.
// Each backup must hold exactly rows 1..N of w and big's stamps up to N.
func TestSnapshotUnderCheckpointChurn(t *testing.T) {
	defer func(v bool) { noKernelCopy = v }(noKernelCopy)
	defer func(n int) { sendChunkBytes = n }(sendChunkBytes)
	sendChunkBytes = chunkBytes // many rounds, as the read-and-write copy has
	for _, kernel := range []bool{true, false} {
		noKernelCopy = !kernel
		t.Run(map[bool]string{true: "sendfile", false: "read and write"}[kernel], snapshotUnderChurn)
	}
}

func snapshotUnderChurn(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	defer startStamper(t, src, 3000, "pragma wal_autocheckpoint=1")()

	copiers := map[string]int{}
	planned.Lock()
	clear(planned.m)
	planned.Unlock()
	last := 0
	for i := range 12 {
		out := filepath.Join(dir, "copy"+strconv.Itoa(i)+".db")
		res, err := Run(context.Background(), Options{
			Source: src, Path: out, BusyTimeout: 5 * time.Second,
			Progress: func(done, total int) { time.Sleep(5 * time.Millisecond) },
		})
		if err != nil {
			t.Fatal(err)
		}
		copiers[string(res.Copier)+" "+res.FileCopySkipped]++
		f := strings.Split(cli(t, out, "select count(*), coalesce(max(id), 0), coalesce(min(id), 1) from w"), "|")
		n, _ := strconv.Atoi(f[0])
		if f[0] != f[1] || f[2] != "1" {
			t.Fatalf("backup %d: w has count %s, max %s, min %s: not a prefix 1..N", i, f[0], f[1], f[2])
		}
		if got := cli(t, out, "select coalesce(max(stamp), 0) from big"); got != f[1] {
			t.Fatalf("backup %d: big's newest stamp is %s, w's newest row %s: two points in time", i, got, f[1])
		}
		if n < last {
			t.Fatalf("backup %d holds %d rows, the one before %d", i, n, last)
		}
		last = n
		os.Remove(out)
	}
	if last < 12 {
		t.Fatalf("the writer committed only %d transactions: the test proves little", last)
	}
	planned.Lock()
	t.Logf("12 backups, last with %d rows; copied by %v; snapshots planned: %v", last, copiers, planned.m)
	planned.Unlock()
	if copiers[string(CopierFile)+" "] == 0 {
		t.Fatalf("no backup used the file copy: %v", copiers)
	}
}

// startStamper creates a WAL database with tables w and big (rows of
// 3000 bytes) at src and starts a writer in other processes (one C CLI
// per transaction, running pragmas first): transaction i inserts row i
// into w and stamps one row of big with i. stop kills it; it may be
// called more than once.
func startStamper(t *testing.T, src string, bigRows int, pragmas string) (stop func()) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("needs the sqlite3 CLI: scripts/install-deps.sh installs it")
	}
	cli(t, src, `pragma journal_mode=wal;
create table w(id integer primary key);
create table big(id integer primary key, stamp integer not null default 0, pad blob);
insert into big(id, pad) select value, randomblob(3000) from generate_series(1, `+strconv.Itoa(bigRows)+`);`)
	script := `i=1; while :; do
  sqlite3 -cmd ".timeout 5000" -cmd "$3" "$1" "begin immediate; insert into w(id) values($i); update big set stamp=$i, pad=randomblob(3000) where id = ($i * 7919) % $2 + 1; commit;" >/dev/null || exit 1
  i=$((i+1)); done`
	writer := exec.Command("bash", "-c", script, "writer", src, strconv.Itoa(bigRows), pragmas+";")
	writer.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			syscall.Kill(-writer.Process.Pid, syscall.SIGKILL)
			writer.Wait()
		}
	}
}
