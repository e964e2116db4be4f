package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskFull is scenario 4: the destination runs out of room, by the
// process's file size limit (RLIMIT_FSIZE, set on the child with
// prlimit) and by a real full file system (a 512 KB tmpfs). Either way:
// exit 1 (not death by SIGXFSZ), an error naming the backup directory,
// no partial file, the source untouched. These runs give --min-free 0,
// so that the write itself meets the full disk; with the default floor
// (5% free) a backup that would not fit is refused before it starts.
func TestDiskFull(t *testing.T) {
	dir := publicTempDir(t)
	src := filepath.Join(dir, "app.db")
	makeDB(t, src, 1, "WAL") // ~1.5 MB
	sum := fileSum(t, src)

	type target struct {
		name string
		out  string
		wrap []string
		want string
	}
	var targets []target
	if p, err := exec.LookPath("prlimit"); err == nil {
		targets = append(targets, target{"rlimit-fsize", filepath.Join(dir, "out-rlimit"), []string{p, "--fsize=400000"},
			"at most 400000 bytes (ulimit -f)"})
	} else {
		t.Errorf("prlimit (util-linux) not installed: scripts/install-deps.sh installs it")
	}
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=512k"); err != nil {
		t.Logf("SKIP full tmpfs part: cannot mount a tmpfs here (%v; needs root or CAP_SYS_ADMIN); the RLIMIT_FSIZE part still runs", err)
	} else {
		t.Cleanup(func() { syscall.Unmount(mnt, 0) })
		targets = append(targets, target{"full-tmpfs", filepath.Join(mnt, "out"), nil, "no space left on the destination"})
	}

	// Room for the copy of a WAL source, its lock file, its two small
	// sidecars and a one-page journal, not for a 32 KB -shm: finishing the
	// copy must not need one.
	t.Run("WAL source, 16 KB to spare", func(t *testing.T) {
		tight := mountTmpfs(t, filepath.Join(dir, "tight"), fileSize(t, src)+16384)
		out := filepath.Join(tight, "out")
		r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out, "--min-free", "0")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		if b := backupsIn(t, out); len(b) != 1 || len(listDir(t, out)) != 4 {
			t.Errorf("want the backup, its .sha256 and .json and the lock file, got %v", listDir(t, out))
		}
	})

	// Room for the copy, not for its compressed twin (random rows do not
	// shrink): the compression step must fail as cleanly as the copy.
	t.Run("compress onto a full disk", func(t *testing.T) {
		mnt := mountTmpfs(t, filepath.Join(dir, "zfull"), fileSize(t, src)+65536)
		out := filepath.Join(mnt, "out")
		r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out, "--compress", "zstd", "--min-free", "0")
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
		}
		for _, want := range []string{out, "no space left on device"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		nothingLeft(t, out, src, sum)
	})

	// The default floor: a backup that would leave the file system
	// under 5% free is refused before anything is written.
	t.Run("default --min-free", func(t *testing.T) {
		mnt := mountTmpfs(t, filepath.Join(dir, "floor"), fileSize(t, src)+16384)
		out := filepath.Join(mnt, "out")
		r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
		}
		for _, want := range []string{out, "not enough free space", "--min-free 5%", "nothing was written", "hint: "} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("the refused run created %s: %v", out, listDir(t, out))
		}
	})

	for _, tg := range targets {
		for _, method := range []string{"backup", "vacuum"} {
			t.Run(tg.name+"/"+method, func(t *testing.T) {
				out := filepath.Join(tg.out, method)
				r := runBin(t, runOpts{wrap: tg.wrap}, "--source", src, "--backup-dir", out, "--method", method, "--min-free", "0")
				if r.signal != 0 {
					t.Fatalf("killed by %v: a full destination must be an error, not a crash\n%s", r.signal, r.stderr)
				}
				if r.code != 1 {
					t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
				}
				for _, want := range []string{`write backup in "` + out + `"`, tg.want, "partial copy was removed", "hint: "} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
					}
				}
				nothingLeft(t, out, src, sum)
			})
		}
	}
}

// TestLockedRollbackSource is scenario 5: a rollback-journal database
// whose writer holds an exclusive lock longer than --busy-timeout gives
// "database is locked" with the --busy-timeout hint, exit 1, and leaves
// no file; with a long enough timeout the same run waits and succeeds.
func TestLockedRollbackSource(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"backup", "vacuum"} {
		t.Run(method, func(t *testing.T) {
			ready := filepath.Join(dir, "ready-"+method)
			hold := exec.Command(writer, "-hold", "60s", "-ready", ready, src)
			if err := hold.Start(); err != nil {
				t.Fatal(err)
			}
			defer hold.Process.Kill()
			waitFile(t, ready, 30*time.Second)

			out := filepath.Join(dir, "out-"+method)
			r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out, "--busy-timeout", "300ms", "--method", method)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			for _, want := range []string{src, "database is locked", "busy timeout (300ms)", "hint: ", "--busy-timeout"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			nothingLeft(t, out, src, "")
			hold.Process.Signal(syscall.SIGTERM)
			if err := hold.Wait(); err != nil {
				t.Fatalf("lock holder: %v", err)
			}
		})
	}

	// A holder that lets go within the busy timeout is waited for.
	ready := filepath.Join(dir, "ready-short")
	hold := exec.Command(writer, "-hold", "1s", "-ready", ready, src)
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer hold.Process.Kill()
	waitFile(t, ready, 30*time.Second)
	out := filepath.Join(dir, "out-wait")
	r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out, "--busy-timeout", "30s")
	if r.code != 0 {
		t.Fatalf("with a long busy timeout: exit %d\n%s", r.code, r.stderr)
	}
	if err := hold.Wait(); err != nil {
		t.Fatalf("lock holder: %v", err)
	}
	b := backupsIn(t, out)
	if len(b) != 1 {
		t.Fatalf("want one backup, got %v", listDir(t, out))
	}
	// The holder's row was committed before the backup could read.
	if got := cli3(t, b[0], "SELECT count(*) FROM held"); got != "3\n" {
		t.Errorf("backup holds %q rows of the held table, want the 3 committed ones", got)
	}
}

// mountTmpfs mounts a tmpfs of size bytes at dir (created), unmounted when
// the test ends; it skips the test where mounting is not allowed.
func mountTmpfs(t *testing.T, dir string, size int64) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Skipf("SKIP: cannot mount a tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
