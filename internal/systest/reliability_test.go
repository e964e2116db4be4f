package systest

// Shared helpers of the reliability suite (reliability_*_test.go): every
// scenario runs the real sqlite-backup binary and real writer processes
// that testscript.Main put on $PATH, against real SQLite files.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// stressFull says whether to run the full counts (100 backups
// under load, 50 crashes) instead of the bounded default for CI.
func stressFull() bool { return os.Getenv("SQLITE_BACKUP_STRESS") == "full" }

// iterations picks the default or the full count.
func iterations(def, full int) int {
	if stressFull() {
		return full
	}
	return def
}

// toolPath is the sqlite-backup binary (this test binary under that name).
func toolPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sqlite-backup")
	if err != nil {
		t.Fatalf("sqlite-backup not on PATH (TestMain sets it up): %v", err)
	}
	return p
}

type result struct {
	code           int
	stdout, stderr string
	signal         syscall.Signal // set when the process was killed by a signal
}

// runOpts tune one run of a command.
type runOpts struct {
	dir   string
	env   []string // added to the environment
	clean bool     // start from an environment without SQLITE_BACKUP_*/DATABASE_URL
	cred  *syscall.Credential
	wrap  []string // a program and args to run the command under (prlimit)
}

// toolEnv is the environment for the tool: nothing inherited that could
// pick a source or a setting for it.
func toolEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SQLITE_BACKUP_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		env = append(env, kv)
	}
	// A config file in /etc must not leak into tests.
	env = append(env, "SQLITE_BACKUP_CONFIG=/dev/null")
	return append(env, extra...)
}

func command(t testing.TB, o runOpts, name string, args ...string) *exec.Cmd {
	t.Helper()
	if name == "sqlite-backup" {
		name = toolPath(t)
	}
	argv := append(append(append([]string{}, o.wrap...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = o.dir
	cmd.Env = toolEnv(o.env)
	if o.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
	}
	return cmd
}

// runTool runs sqlite-backup to completion.
func runBin(t testing.TB, o runOpts, args ...string) result {
	t.Helper()
	return runCmd(t, command(t, o, "sqlite-backup", args...))
}

func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return r
}

// cli3 runs the independent C CLI on db.
func cli3(t testing.TB, db string, sql ...string) string {
	t.Helper()
	cmd := exec.Command("sqlite3", append([]string{"-batch", db}, sql...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", db, sql, err, out)
	}
	return string(out)
}

func fileSum(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tree is a snapshot of a directory tree: for each relative path its
// type, permissions and content hash (symlinks: their target).
type tree map[string]string

func treeOf(t testing.TB, root string) tree {
	t.Helper()
	s := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			desc += " uid=" + strconv.Itoa(int(st.Uid))
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case info.Mode().IsRegular():
			desc += " " + fileSum(t, p)
		}
		s[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return s
}

// diff lists what changed between two snapshots, one line a path.
func (a tree) diff(b tree) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, "changed "+k+": "+v+" => "+w)
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "created "+k+" ("+v+")")
		}
	}
	sort.Strings(d)
	return d
}

// nothingLeft fails unless a failed run left the backup dir holding at
// most its lock file and the source as it was (sum "" skips that check).
func nothingLeft(t testing.TB, out, src, sum string) {
	t.Helper()
	if got := listDir(t, out); len(got) > 1 || (len(got) == 1 && got[0] != ".sqlite-backup.lock") {
		t.Errorf("left in the backup dir: %v", got)
	}
	if sum != "" && fileSum(t, src) != sum {
		t.Error("the source changed")
	}
}

// listDir names the entries of dir, sorted ("" if it does not exist).
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// backupsIn returns the files in dir under a final backup name.
func backupsIn(t testing.TB, dir string) []string {
	var out []string
	for _, n := range listDir(t, dir) {
		if backupName.MatchString(n) && !strings.HasPrefix(n, ".") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

// tempsIn returns the files in dir that carry the tool's temp prefix.
func tempsIn(t testing.TB, dir string) []string {
	var out []string
	for _, n := range listDir(t, dir) {
		if strings.HasPrefix(n, ".sqlite-backup-tmp-") {
			out = append(out, n)
		}
	}
	return out
}

// makeDB builds a database with the C CLI (an independent writer) of
// about mb megabytes in rows of 1000 random bytes plus an index, so
// integrity_check has work to do.
func makeDB(t testing.TB, path string, mb int, journal string) {
	t.Helper()
	cli3(t, path, "PRAGMA journal_mode="+journal+";"+
		"CREATE TABLE big(id INTEGER PRIMARY KEY, k TEXT, v BLOB);"+
		"INSERT INTO big(k, v) SELECT hex(randomblob(8)), randomblob(1000) FROM generate_series(1,"+strconv.Itoa(mb*1000)+");"+
		"CREATE INDEX big_k ON big(k);")
}

var (
	bigOnce sync.Once
	bigPath string
	bigErr  error
)

// sharedBigDB is one ~33 MB rollback-journal database, built once per
// test binary, for scenarios that need a copy that takes a while. Tests
// must not write to it: they compare its hash before and after.
func sharedBigDB(t testing.TB) string {
	t.Helper()
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sqlite-backup-big-")
		if err != nil {
			bigErr = err
			return
		}
		os.Chmod(dir, 0o755)
		bigPath = filepath.Join(dir, "big.db")
		makeDB(t, bigPath, 24, "DELETE")
	})
	if bigErr != nil {
		t.Fatal(bigErr)
	}
	return bigPath
}

// publicTempDir is a 0755 temp dir (t.TempDir is 0700, which an
// unprivileged user cannot enter), removed after the test.
func publicTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sqlite-backup-rel-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// backupName is a timestamped backup's file name.
var backupName = regexp.MustCompile(`^.+\.\d{8}_\d{6}(-\d+)?$`)
