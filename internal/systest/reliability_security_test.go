package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPrivateWhateverUmask: the backup is 0600, the directories the tool
// creates 0700 and its lock file 0600 under any umask, since a backup
// holds the whole database.
func TestPrivateWhateverUmask(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "CREATE TABLE t(x); INSERT INTO t VALUES('secret');")
	for _, mask := range []int{0o000, 0o002, 0o022, 0o077} {
		out := filepath.Join(dir, "umask"+strconvOct(mask), "a", "b")
		old := syscall.Umask(mask) // inherited by the child; tests here run one at a time
		r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out)
		syscall.Umask(old)
		if r.code != 0 {
			t.Fatalf("umask %03o: exit %d\n%s", mask, r.code, r.stderr)
		}
		b := backupsIn(t, out)
		if len(b) != 1 {
			t.Fatalf("umask %03o: %v", mask, listDir(t, out))
		}
		checkMode(t, b[0], 0o600)
		checkMode(t, filepath.Join(out, ".sqlite-backup.lock"), 0o600)
		for d := out; d != dir; d = filepath.Dir(d) {
			checkMode(t, d, os.ModeDir|0o700)
		}
	}
}

func strconvOct(m int) string {
	return string([]byte{'0' + byte(m>>6&7), '0' + byte(m>>3&7), '0' + byte(m&7)})
}

func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModeType | os.ModePerm); got != want {
		t.Errorf("%s: mode %v, want %v", p, got, want)
	}
}

// TestNeverRunsAProgram: a backup (copy, verify, publish) and a verify
// run start no other program, no shell: strace sees no execve but the
// tool's own. (The SQLite library links a system() for the C library it
// emulates; this checks that nothing calls it.)
func TestNeverRunsAProgram(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace not installed: scripts/install-deps.sh installs it")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	for i, args := range [][]string{
		{"--source", src, "--backup-dir", filepath.Join(dir, "out")},
		{"--source", src, "--backup-dir", filepath.Join(dir, "out"), "--method", "vacuum"},
		{"verify", src},
		{"config", "--source", src},
	} {
		trace := filepath.Join(dir, "trace")
		r := runBin(t, runOpts{wrap: []string{strace, "-f", "-qq", "-e", "trace=execve,execveat,fork,vfork", "-o", trace}}, args...)
		if r.code != 0 {
			if strings.Contains(r.stderr, "ptrace") || strings.Contains(r.stderr, "Operation not permitted") {
				t.Skip("SKIP: strace cannot trace here: " + r.stderr)
			}
			t.Fatalf("run %d %v: exit %d\n%s", i, args, r.code, r.stderr)
		}
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		var calls []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(l, "exec") || strings.Contains(l, "fork") {
				calls = append(calls, l)
			}
		}
		if len(calls) != 1 || !strings.Contains(calls[0], "sqlite-backup") {
			t.Errorf("run %v: want only the tool's own execve, strace saw:\n%s", args, strings.Join(calls, "\n"))
		}
	}
}
