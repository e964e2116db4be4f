package systest

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sqlite-backup/internal/sys/lock"
)

// TestCrashSIGKILL is scenario 2: a backup run is killed with SIGKILL at
// a random moment (copy, verify, rename). After each kill no file under a
// final backup name may fail verify, the quiescent source is byte for
// byte unchanged, and the next normal run succeeds and leaves no temp
// file behind (it removes the ones killed runs left).
//
// SQLITE_BACKUP_STRESS=full runs 50 kills instead of 10.
func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash scenario: skipped with -short")
	}
	n := iterations(10, 50)
	src := sharedBigDB(t)
	sum := fileSum(t, src)
	out := filepath.Join(t.TempDir(), "out")

	// Calibrate the kill window on this machine: the faster of two full
	// runs (the first one may pay for a cold page cache).
	window := time.Hour
	for range 2 {
		t0 := time.Now()
		if r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out); r.code != 0 {
			t.Fatalf("calibration run: exit %d\n%s", r.code, r.stderr)
		}
		window = min(window, time.Since(t0))
	}
	window = window * 11 / 10
	clear := func() {
		for _, b := range backupsIn(t, out) {
			os.Remove(b)
		}
	}
	clear()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var tempsLeft, published, early, noSidecars int
	for i := range n {
		delay := time.Duration(rng.Int64N(int64(window)))
		cmd := command(t, runOpts{}, "sqlite-backup", "--source", src, "--backup-dir", out)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err == nil {
			early++ // finished before the kill: still a valid sample of "after"
		}

		temps := tempsIn(t, out)
		finals := backupsIn(t, out)
		if len(temps) > 0 {
			tempsLeft++
		}
		if len(finals) > 0 {
			published++
			for _, f := range finals {
				for _, sc := range []string{".sha256", ".json"} {
					if _, err := os.Stat(f + sc); err != nil {
						noSidecars++ // killed between the rename and the sidecars
					}
				}
			}
			if r := runBin(t, runOpts{}, append([]string{"verify"}, finals...)...); r.code != 0 {
				t.Fatalf("kill %d after %v: a file under a final name fails verify:\n%s%s", i+1, delay, r.stdout, r.stderr)
			}
		}
		if got := fileSum(t, src); got != sum {
			t.Fatalf("kill %d after %v: the source changed", i+1, delay)
		}
		for _, s := range []string{"-journal", "-wal", "-shm"} {
			if _, err := os.Stat(src + s); err == nil {
				t.Fatalf("kill %d: %s%s left beside the source", i+1, src, s)
			}
		}
		clear()

		// Every other kill, let a second killed run's leftovers pile up
		// before a normal run has to clean them all.
		if i%2 == 0 && i != n-1 {
			continue
		}
		r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out)
		if r.code != 0 {
			t.Fatalf("normal run after kill %d: exit %d\n%s", i+1, r.code, r.stderr)
		}
		if temps := tempsIn(t, out); len(temps) > 0 {
			t.Fatalf("normal run after kill %d left temp files: %v", i+1, temps)
		}
		if len(backupsIn(t, out)) != 1 {
			t.Fatalf("normal run after kill %d: want 1 backup, dir holds %v", i+1, listDir(t, out))
		}
		clear()
	}
	t.Logf("crash: %d SIGKILLs at random moments within %v: %d left a temp file, %d after the rename, %d finished first; %d sidecars missing beside a published backup; all final files verified, source unchanged, next run cleaned up",
		n, window.Round(time.Millisecond), tempsLeft, published, early, noSidecars)
}

// TestStaleTempsOnlyOursOnlyUnderLock: the cleanup of killed runs'
// leftovers removes only names with the tool's temp prefix, and never
// while another run holds the directory's lock.
func TestStaleTempsOnlyOursOnlyUnderLock(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(out, ".sqlite-backup-tmp-app.db-0123456789ab")
	foreign := []string{"app.db.tmp", ".sqlite-backup-tmp", ".sqlite-backup-tmpx", "notes.txt", "app.db.20200101_000000"}
	for _, f := range append(foreign, filepath.Base(ours)) {
		if err := os.WriteFile(filepath.Join(out, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Another run (this test) holds the lock: the tool must fail at once
	// and touch nothing, since that temp file may be the live run's.
	lk, err := lock.Acquire(context.Background(), out, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out)
	if r.code != 1 || !strings.Contains(r.stderr, "locked by another sqlite-backup run") || !strings.Contains(r.stderr, out) {
		t.Fatalf("with the lock held: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(ours); err != nil {
		t.Fatalf("the temp file of a live run was removed: %v", err)
	}
	lk.Release()

	r = runBin(t, runOpts{}, "--source", src, "--backup-dir", out)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(ours); err == nil {
		t.Errorf("stale temp %s not removed", ours)
	}
	for _, f := range foreign {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s is not ours, but was removed: %v", f, err)
		}
	}
}

// TestInterruptMidCopy is scenario 3: SIGINT and SIGTERM while the copy
// is being written remove the temp file and exit 130/143.
func TestInterruptMidCopy(t *testing.T) {
	src := sharedBigDB(t)
	sum := fileSum(t, src)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := command(t, runOpts{}, "sqlite-backup", "--source", src, "--backup-dir", out)
			var se strings.Builder
			cmd.Stderr = &se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Mid-copy: the temp file exists and has pages in it.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if ts := tempsIn(t, out); len(ts) > 0 {
					if fi, err := os.Stat(filepath.Join(out, ts[0])); err == nil && fi.Size() > 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("no temp file with data appeared")
				}
				time.Sleep(time.Millisecond)
			}
			cmd.Process.Signal(tc.sig)
			err := cmd.Wait()
			code := 0
			if err != nil {
				code = cmd.ProcessState.ExitCode()
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, se.String())
			}
			if !strings.Contains(se.String(), "interrupted by") {
				t.Errorf("stderr does not say it was interrupted: %q", se.String())
			}
			nothingLeft(t, out, src, sum)
		})
	}
}

// TestInterruptWhileWaiting: SIGINT while waiting out --busy-timeout for
// a locked source, and SIGTERM while waiting for another run's directory
// lock, end the run (130/143) without leaving a file, rather than after
// the timeout.
func TestInterruptWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}

	wait := func(t *testing.T, args []string, sig syscall.Signal, code int, out string) {
		t.Helper()
		cmd := command(t, runOpts{}, "sqlite-backup", args...)
		var se strings.Builder
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it reach the wait (its signal handler is installed long
		// before); the exit code shows the signal was handled, not fatal.
		time.Sleep(500 * time.Millisecond)
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute): // liveness bound, far above the expected instant
			cmd.Process.Kill()
			t.Fatalf("%v did not end the wait", sig)
		}
		if got := cmd.ProcessState.ExitCode(); got != code {
			t.Fatalf("exit %d, want %d\n%s", got, code, se.String())
		}
		if ts := tempsIn(t, out); len(ts) > 0 || len(backupsIn(t, out)) > 0 {
			t.Errorf("left in the backup dir: %v", listDir(t, out))
		}
	}

	t.Run("SIGINT waiting for a locked source", func(t *testing.T) {
		ready := filepath.Join(dir, "ready")
		hold := exec.Command(writer, "-hold", "10m", "-ready", ready, src)
		if err := hold.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { hold.Process.Signal(syscall.SIGTERM); hold.Wait() }()
		waitFile(t, ready, 30*time.Second)
		out := filepath.Join(dir, "out1")
		wait(t, []string{"--source", src, "--backup-dir", out, "--busy-timeout", "10m"}, syscall.SIGINT, 130, out)
	})
	t.Run("SIGTERM waiting for the directory lock", func(t *testing.T) {
		out := filepath.Join(dir, "out2")
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		lk, err := lock.Acquire(context.Background(), out, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Release()
		wait(t, []string{"--source", src, "--backup-dir", out, "--lock-timeout", "10m"}, syscall.SIGTERM, 143, out)
	})
}

// TestInterruptAfterPublish: an interruption after something stayed
// done must not be reported as "nothing published or replaced": SIGINT
// while the restored database is checked (it is already in place), and
// while the second of two sources is copied (the first is published).
func TestInterruptAfterPublish(t *testing.T) {
	big := sharedBigDB(t)
	interrupt := func(t *testing.T, cmd *exec.Cmd, ready func() bool) (int, string) {
		t.Helper()
		var se strings.Builder
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for !ready() {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the moment to interrupt never came; stderr:\n%s", se.String())
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		return cmd.ProcessState.ExitCode(), se.String()
	}
	inode := func(p string) uint64 {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil {
			return 0
		}
		return st.Ino
	}

	t.Run("restore, during the check of the replaced database", func(t *testing.T) {
		// The check of the 24 MB database takes a moment; the signal
		// may still come after it: try again a few times.
		for attempt := 1; ; attempt++ {
			dir := t.TempDir()
			target := filepath.Join(dir, "app.db")
			cli3(t, target, "CREATE TABLE old(x); INSERT INTO old VALUES(42);")
			before := inode(target)
			cmd := command(t, runOpts{}, "sqlite-backup", "restore", big, "--to", target, "--force")
			code, stderr := interrupt(t, cmd, func() bool { i := inode(target); return i != 0 && i != before })
			if code == 0 && attempt < 5 {
				continue
			}
			if code != 130 {
				t.Fatalf("exit %d, want 130; stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr, "nothing published or replaced") {
				t.Errorf("says nothing was replaced, but %s is the restored file:\n%s", target, stderr)
			}
			if !strings.Contains(stderr, target+" already holds the restored backup, not yet checked") {
				t.Errorf("does not say the target was replaced:\n%s", stderr)
			}
			safety := ""
			for _, n := range listDir(t, dir) {
				if strings.HasPrefix(n, "app.db.pre-restore.") {
					safety = filepath.Join(dir, n)
				}
			}
			if safety == "" || !strings.Contains(stderr, "the database before is saved as "+safety) {
				t.Errorf("does not name the safety copy %q (dir: %v):\n%s", safety, listDir(t, dir), stderr)
			} else if got := strings.TrimSpace(cli3(t, safety, "SELECT x FROM old")); got != "42" {
				t.Errorf("safety copy holds %q, want the old row 42", got)
			}
			return
		}
	})

	t.Run("backup, second source after the first was published", func(t *testing.T) {
		dir := t.TempDir()
		small := filepath.Join(dir, "small.db")
		cli3(t, small, "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
		out := filepath.Join(dir, "out")
		cmd := command(t, runOpts{}, "sqlite-backup", "--source", small, "--source", big, "--backup-dir", out)
		code, stderr := interrupt(t, cmd, func() bool {
			ts := tempsIn(t, out)
			return len(backupsIn(t, out)) == 1 && len(ts) > 0
		})
		if code != 130 {
			t.Fatalf("exit %d, want 130; stderr:\n%s", code, stderr)
		}
		bs := backupsIn(t, out)
		if len(bs) != 1 || !strings.HasPrefix(filepath.Base(bs[0]), "small.db.") {
			t.Fatalf("backups left: %v, want the small database's only", bs)
		}
		if strings.Contains(stderr, "nothing published or replaced") || !strings.Contains(stderr, "already published: "+bs[0]) {
			t.Errorf("does not say %s was published:\n%s", bs[0], stderr)
		}
		if ts := tempsIn(t, out); len(ts) > 0 {
			t.Errorf("temp files left: %v", ts)
		}
	})
}
