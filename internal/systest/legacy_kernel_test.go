//go:build linux

package systest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"sqlite-backup/internal/testdb"
)

// The release is meant for old servers: Go 1.26 runs on Linux 3.2 and
// later, while the tool, Go's runtime and the libraries use system calls
// of later kernels where they find them (renameat2, getrandom, statx,
// copy_file_range, pidfd_*, openat2, …). TestLegacyKernel runs the tool
// under a seccomp filter that answers ENOSYS for every x86-64 system call
// newer than Linux 3.2, as that kernel would: whatever needs one must
// fall back or fail the flow.
//
// The test binary is the launcher: run with legacyLaunchEnv set, it
// installs the filter and execs os.Args[1:] (a filter survives execve and
// is inherited by every thread the program starts). Run with
// legacyProbeEnv set, it is the probe that shows the filter at work.

const (
	legacyLaunchEnv = "SQLITE_BACKUP_TEST_LEGACY_LAUNCH"
	legacyProbeEnv  = "SQLITE_BACKUP_TEST_LEGACY_PROBE"
	// legacyChrootEnv makes the launcher chroot to its value and become
	// the user nobody before the filter goes on, as the release's chroot
	// proof runs the tool (TestReleaseStaticChroot).
	legacyChrootEnv = "SQLITE_BACKUP_TEST_LEGACY_CHROOT"
	legacyNobody    = 65534
	// legacyFirstNew is the first x86-64 system call Linux 3.2 lacks:
	// kcmp (3.5). 3.2 added process_vm_readv/writev (310, 311). Every
	// number from 312 up is newer: 312-334 (kcmp … rseq), nothing at
	// 335-423, 424 and up (pidfd_send_signal, clone3, openat2, …), and the
	// x32 calls (bit 30 set).
	legacyFirstNew = unix.SYS_KCMP
)

func init() {
	// Before TestMain: neither program may run as the test binary.
	switch {
	case os.Getenv(legacyLaunchEnv) != "":
		os.Exit(legacyLaunch())
	case os.Getenv(legacyProbeEnv) != "":
		os.Exit(legacyProbe())
	}
}

// legacyLaunch installs the filter and execs os.Args[1:]; it returns
// only on failure.
func legacyLaunch() int {
	os.Unsetenv(legacyLaunchEnv) // the program is this binary too: launch once
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "legacy launcher: no program to run")
		return 125
	}
	// The filter goes on every thread (TSYNC); the exec happens on this
	// one, which keeps it.
	runtime.LockOSThread()
	if root := os.Getenv(legacyChrootEnv); root != "" {
		os.Unsetenv(legacyChrootEnv)
		for _, step := range []func() error{
			func() error { return syscall.Chroot(root) },
			func() error { return os.Chdir("/") },
			func() error { return syscall.Setgroups(nil) },
			func() error { return syscall.Setgid(legacyNobody) },
			func() error { return syscall.Setuid(legacyNobody) },
		} {
			if err := step(); err != nil {
				fmt.Fprintf(os.Stderr, "legacy launcher: chroot %s as nobody: %v\n", root, err)
				return 125
			}
		}
	}
	if err := installLegacyFilter(); err != nil {
		fmt.Fprintf(os.Stderr, "legacy launcher: %v\n", err)
		return 125
	}
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "legacy launcher: exec %s: %v\n", os.Args[1], err)
	return 125
}

// installLegacyFilter: classic BPF over seccomp_data (nr at offset 0,
// arch at 4). Calls of any other ABI (int 0x80 from a 64-bit process)
// get ENOSYS too: their numbers are another table.
func installLegacyFilter() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("the filter knows x86-64's system call table only, not %s's", runtime.GOARCH)
	}
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: unix.AUDIT_ARCH_X86_64},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 1, Jf: 0, K: legacyFirstNew},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// Required to install a filter without CAP_SYS_ADMIN, and kept
	// across execve: the tool cannot gain privileges under it either.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); e != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", e)
	}
	runtime.KeepAlive(filter)
	return nil
}

// legacyProbes are the calls the probe makes, in a scratch dir given as
// os.Args[1] (holding a file "a"): newer ones the filter must refuse,
// and Linux 3.2's last (process_vm_writev) and older ones it must let
// through. Each is harmless, and each newer one succeeds or fails with
// an errno other than ENOSYS on a kernel that has it.
func legacyProbes(dir string) []struct {
	name string
	call func() syscall.Errno
} {
	path := func(s string) uintptr {
		p, _ := unix.BytePtrFromString(filepath.Join(dir, s))
		return uintptr(unsafe.Pointer(p))
	}
	buf := make([]byte, 512)
	b := uintptr(unsafe.Pointer(&buf[0]))
	sys := func(nr uintptr, a ...uintptr) func() syscall.Errno {
		return func() syscall.Errno {
			var x [6]uintptr
			copy(x[:], a)
			r, _, e := unix.Syscall6(nr, x[0], x[1], x[2], x[3], x[4], x[5])
			if e == 0 && (nr == unix.SYS_MEMFD_CREATE || nr == unix.SYS_PIDFD_OPEN || nr == unix.SYS_OPENAT2) {
				unix.Close(int(r))
			}
			return e
		}
	}
	fdcwd := unix.AT_FDCWD
	at := uintptr(fdcwd) // sign-extended, as the kernel reads it
	open := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY}
	name, _ := unix.BytePtrFromString("probe")
	return []struct {
		name string
		call func() syscall.Errno
	}{
		{"getpid", sys(unix.SYS_GETPID)},
		{"renameat", sys(unix.SYS_RENAMEAT, at, path("a"), at, path("b"))},
		{"process_vm_writev", sys(unix.SYS_PROCESS_VM_WRITEV, uintptr(os.Getpid()), 0, 0, 0, 0, 0)},
		{"renameat2", sys(unix.SYS_RENAMEAT2, at, path("b"), at, path("c"), unix.RENAME_NOREPLACE)},
		{"getrandom", sys(unix.SYS_GETRANDOM, b, 16, 0)},
		{"memfd_create", sys(unix.SYS_MEMFD_CREATE, uintptr(unsafe.Pointer(name)), unix.MFD_CLOEXEC)},
		{"copy_file_range", sys(unix.SYS_COPY_FILE_RANGE, ^uintptr(0), 0, ^uintptr(0), 0, 1, 0)},
		{"statx", sys(unix.SYS_STATX, at, path(""), 0, unix.STATX_BASIC_STATS, b)},
		{"pidfd_open", sys(unix.SYS_PIDFD_OPEN, uintptr(os.Getpid()), 0)},
		{"openat2", sys(unix.SYS_OPENAT2, at, path(""), uintptr(unsafe.Pointer(&open)), unsafe.Sizeof(open))},
		{"epoll_pwait2", sys(unix.SYS_EPOLL_PWAIT2, ^uintptr(0), b, 1, 0, 0, 0)},
		{"x32_getpid", sys(unix.SYS_GETPID | 0x40000000)},
	}
}

// legacyOld are the probes of calls Linux 3.2 has.
var legacyOld = map[string]bool{"getpid": true, "renameat": true, "process_vm_writev": true}

// legacyProbe prints "NAME ERRNO" for each probe ("ok" for none), then
// "threads N filtered M": how many of its threads run under a filter.
func legacyProbe() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "legacy probe: no scratch dir")
		return 2
	}
	for _, p := range legacyProbes(os.Args[1]) {
		e := p.call()
		res := "ok"
		if e != 0 {
			res = unix.ErrnoName(e)
		}
		fmt.Printf("%s %s\n", p.name, res)
	}
	// Threads the runtime started after the exec, and one more now.
	done := make(chan struct{})
	go func() { runtime.LockOSThread(); <-done }()
	time.Sleep(10 * time.Millisecond)
	tasks, _ := os.ReadDir("/proc/self/task")
	filtered := 0
	for _, task := range tasks {
		b, _ := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if bytes.Contains(b, []byte("\nSeccomp:\t2\n")) {
			filtered++
		}
	}
	close(done)
	fmt.Printf("threads %d filtered %d\n", len(tasks), filtered)
	return 0
}

// TestLegacyKernel runs the tool's flows under the filter: backup with
// both methods beside a live writer, --compress zstd, -r (age), verify
// (plain, zstd, age with -i; and a damaged copy, which must fail), list
// --verify, restore (new file, --force over a database, from age with
// -i), the release's empty chroot as nobody (backup, verify), and
// backup, list, verify and restore against a real sshd and a real
// versitygw. Every result is judged outside the filter by
// independent tools: the sqlite3 CLI, sha256sum, age. First the probe
// shows that the filter answers ENOSYS to the newer calls (which this
// kernel has) and lets Linux 3.2's through, on every thread.
func TestLegacyKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the seccomp filter knows x86-64's system call table only")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("probe", func(t *testing.T) { legacyProbeCheck(t, self) })
	if t.Failed() {
		return
	}
	legacy := func(env ...string) runOpts {
		return runOpts{wrap: []string{self}, env: append([]string{legacyLaunchEnv + "=1"}, env...)}
	}
	t.Run("local", func(t *testing.T) { legacyLocal(t, legacy()) })
	t.Run("chroot", func(t *testing.T) { legacyChroot(t, self) })
	t.Run("remote", func(t *testing.T) {
		e := newRemoteEnv(t)
		legacyRemote(t, e, legacy(append(e.s3.Env(), "SQLITE_BACKUP_REMOTE_BACKOFF=50ms", "HOME="+t.TempDir(), "SSH_AUTH_SOCK=")...))
	})
}

func legacyProbeCheck(t *testing.T, self string) {
	run := func(filtered bool) map[string]string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var cmd *exec.Cmd
		if filtered {
			cmd = exec.Command(self, self, dir)
			cmd.Env = append(os.Environ(), legacyLaunchEnv+"=1", legacyProbeEnv+"=1")
		} else {
			cmd = exec.Command(self, dir)
			cmd.Env = append(os.Environ(), legacyProbeEnv+"=1")
		}
		out, err := cmd.CombinedOutput()
		if filtered && (bytes.Contains(out, []byte("legacy launcher: prctl")) || bytes.Contains(out, []byte("legacy launcher: seccomp"))) {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true: the filter cannot be installed here: %s", out)
			}
			t.Skipf("the filter cannot be installed here: %s", out)
		}
		if err != nil {
			t.Fatalf("probe (filtered %v): %v\n%s", filtered, err, out)
		}
		got := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), " "); ok {
				got[k] = v
			}
		}
		t.Logf("filtered %v: %q", filtered, out)
		return got
	}
	bare, under := run(false), run(true)
	for _, p := range legacyProbes("") {
		switch {
		case legacyOld[p.name]:
			if under[p.name] != "ok" {
				t.Errorf("%s (in Linux 3.2) under the filter: %s, want ok", p.name, under[p.name])
			}
		case under[p.name] != "ENOSYS":
			t.Errorf("%s under the filter: %s, want ENOSYS", p.name, under[p.name])
		}
	}
	// ENOSYS under the filter is the filter's doing only where this
	// kernel has the call: these it has on every kernel CI runs on.
	for _, name := range []string{"renameat2", "getrandom", "statx", "memfd_create", "copy_file_range", "pidfd_open", "openat2"} {
		if bare[name] == "ENOSYS" || bare[name] == "" {
			t.Errorf("%s without the filter: %q; the probe proves nothing about it", name, bare[name])
		}
	}
	var n, f int
	if _, err := fmt.Sscanf("threads "+under["threads"], "threads %d filtered %d", &n, &f); err != nil || n < 2 || f != n {
		t.Errorf("under the filter: %q threads line; want every thread (at least 2) filtered", under["threads"])
	}
}

// legacyJSON is what the tests read of a backup's --json result.
type legacyJSON struct {
	Path   string `json:"path"`
	OK     bool   `json:"ok"`
	Copier string `json:"copier"`
}

func legacyLocal(t *testing.T, o runOpts) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	out := filepath.Join(dir, "out")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) result {
		t.Helper()
		r := runBin(t, o, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	// A WAL source with a live writer (not filtered: it is the
	// application): the file copy reads -wal and -shm beside it.
	testdb.Create(t, src, testdb.Options{WAL: true, Rows: 2000, BlobSize: 500})
	writer, err := exec.LookPath("sqlwriter")
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	w := exec.Command(writer, "-ready", ready, src)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	waitFile(t, ready, 30*time.Second)

	backup := func(args ...string) legacyJSON {
		t.Helper()
		r := must(append([]string{"--source", src, "--backup-dir", out, "--keep", "0", "--json"}, args...)...)
		var res legacyJSON
		oneResult(t, r.stdout, &res)
		if !res.OK {
			t.Fatalf("%v: not ok: %s", args, r.stdout)
		}
		return res
	}
	plain := backup()
	if plain.Copier != "file" {
		t.Errorf("plain backup copied by %q, want the file copy", plain.Copier)
	}
	vacuum := backup("--method", "vacuum")
	zst := backup("--compress", "zstd")
	enc := backup("-r", id.Recipient().String(), "-i", key)
	encZst := backup("-r", id.Recipient().String(), "-i", key, "--compress", "zstd")
	w.Process.Signal(syscall.SIGTERM)
	w.Wait()
	for _, p := range []string{plain.Path, vacuum.Path, zst.Path, enc.Path, encZst.Path} {
		if !strings.HasPrefix(filepath.Base(p), "app.db.") {
			t.Fatalf("backup %q", p)
		}
	}
	if !strings.HasSuffix(zst.Path, ".zst") || !strings.HasSuffix(enc.Path, ".age") || !strings.HasSuffix(encZst.Path, ".zst.age") {
		t.Fatalf("names: %s %s %s", zst.Path, enc.Path, encZst.Path)
	}
	if n := sha256sumCheck(t, out); len(n) != 5 {
		t.Fatalf("sha256sum -c checked %v, want 5 backups", n)
	}
	for _, p := range []string{plain.Path, vacuum.Path} {
		legacyWhole(t, p)
	}
	// age, outside the filter, opens what the tool sealed under it.
	plainAge := filepath.Join(dir, "from-age.db")
	if b, err := exec.Command("age", "-d", "-i", key, "-o", plainAge, enc.Path).CombinedOutput(); err != nil {
		t.Fatalf("age -d: %v\n%s", err, b)
	}
	legacyWhole(t, plainAge)

	for _, p := range []string{plain.Path, vacuum.Path, zst.Path, enc.Path, encZst.Path} {
		r := must("verify", "-i", key, p)
		if !strings.Contains(r.stdout, ": ok") {
			t.Errorf("verify %s: %s", p, r.stdout)
		}
	}
	// A damaged copy fails under the filter too: the check is not a
	// pass by default.
	bad := filepath.Join(dir, "bad.db")
	data, err := os.ReadFile(plain.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	testdb.Corrupt(t, bad, len(data)/4096/2, 4096)
	if r := runBin(t, o, "verify", bad); r.code != 3 {
		t.Errorf("verify of a damaged copy: exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	l := must("list", "--backup-dir", out, "--source", src, "--verify", "-i", key)
	for _, p := range []string{plain.Path, zst.Path, encZst.Path} {
		if !strings.Contains(l.stdout, filepath.Base(p)) {
			t.Errorf("list lacks %s:\n%s", filepath.Base(p), l.stdout)
		}
	}

	to := filepath.Join(dir, "restored", "new.db")
	os.Mkdir(filepath.Dir(to), 0o700)
	must("restore", zst.Path, "--to", to)
	legacyWhole(t, to)
	// Over an existing database: a safety copy first, then the swap.
	must("restore", encZst.Path, "-i", key, "--to", to, "--force")
	legacyWhole(t, to)
	if m, _ := filepath.Glob(to + ".pre-restore.*"); len(m) != 1 {
		t.Errorf("safety copies: %v", m)
	}
}

// legacyWhole judges a backup of the local flows' source with the
// sqlite3 CLI: sound, the 2000 rows it was made with, and the writer's
// rows a gapless 1..n.
func legacyWhole(t *testing.T, p string) {
	t.Helper()
	got := strings.TrimSpace(cli3(t, p, "PRAGMA integrity_check", "SELECT (SELECT count(*) FROM t) = 2000 AND (SELECT count(*) = coalesce(max(id), 0) FROM w)"))
	if got != "ok\n1" {
		t.Errorf("%s: sqlite3 says %q", p, got)
	}
}

func legacyRemote(t *testing.T, e *remoteEnv, o runOpts) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 2000, BlobSize: 500})
	bdir := filepath.Join(dir, "backups")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) result {
		t.Helper()
		r := runBin(t, o, append(args, e.flags...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	var names []string
	for _, extra := range [][]string{{"--compress", "zstd"}, {"-r", id.Recipient().String(), "-i", key}} {
		r := must(append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL, "--json"}, extra...)...)
		b := parseBackup(t, r.stdout)
		if len(b.Remotes) != 2 {
			t.Fatalf("remotes: %+v", b.Remotes)
		}
		for _, rr := range b.Remotes {
			if rr.Error != "" || len(rr.Uploaded) != 1 || rr.Uploaded[0] != filepath.Base(b.Path) {
				t.Fatalf("remote %+v", rr)
			}
		}
		names = append(names, filepath.Base(b.Path))
	}
	sort.Strings(names) // as sha256sumCheck lists them
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		if got := sha256sumCheck(t, d); strings.Join(got, " ") != strings.Join(names, " ") {
			t.Fatalf("%s holds %v, want %v", d, got, names)
		}
		noTempFiles(t, d)
	}
	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		l := must("list", "--remote", url)
		for _, n := range names {
			if !strings.Contains(l.stdout, n) {
				t.Errorf("list --remote %s lacks %s:\n%s", url, n, l.stdout)
			}
		}
		for i, n := range names {
			v := must("verify", "-i", key, url+"/"+n)
			if !strings.Contains(v.stdout, ": ok") {
				t.Errorf("verify %s/%s: %s", url, n, v.stdout)
			}
			to := filepath.Join(t.TempDir(), "r"+strconv.Itoa(i)+".db")
			must("restore", "-i", key, url+"/"+n, "--to", to)
			if got := strings.TrimSpace(cli3(t, to, "PRAGMA integrity_check", "SELECT count(*) FROM t")); got != "ok\n2000" {
				t.Errorf("restored %s/%s: sqlite3 says %q", url, n, got)
			}
		}
	}
}

// legacyChroot is the release's chroot proof (TestReleaseStaticChroot)
// under the filter: the tool alone with a database in an empty root, as
// nobody. Before Linux 3.17 there is no getrandom, and Go reads
// /dev/urandom instead; a dependency (github.com/rs/xid, through
// minio-go) reads random bytes in its init, so without the device the
// binary cannot even start there. With /dev/urandom, and nothing else,
// backups with both methods and verify work, and a corrupt file fails.
func legacyChroot(t *testing.T, self string) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the chroot proof needs root (CI runs as root)")
		}
		t.Skip("chroot needs root")
	}
	root := t.TempDir()
	copyFile(t, toolPath(t), filepath.Join(root, "sqlite-backup"), 0o755)
	for _, d := range []string{"data", "backup", "dev"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeTestDB(t, filepath.Join(root, "data", "app.db"))
	for _, p := range []string{"data", "backup", "data/app.db", "data/app.db-wal", "data/app.db-shm"} {
		os.Chown(filepath.Join(root, p), legacyNobody, legacyNobody)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	inChroot := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(self, append([]string{"/sqlite-backup"}, args...)...)
		cmd.Env = []string{legacyLaunchEnv + "=1", legacyChrootEnv + "=" + root} // no TMPDIR, HOME, PATH
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out, []byte("legacy launcher:")) {
			t.Fatalf("%s", out)
		}
		first, _, _ := strings.Cut(string(out), "\n\n") // not a crash's goroutine dump
		t.Logf("chroot$ sqlite-backup %s: exit %d\n%s", strings.Join(args, " "), code, first)
		return string(out), code
	}
	if out, code := inChroot("version"); code == 0 || !strings.Contains(out, "crypto/rand") || !strings.Contains(out, "/dev/urandom") {
		t.Errorf("without getrandom and /dev/urandom: exit %d, want the start to fail on crypto/rand reading /dev/urandom (docs/RELEASE.md says it needs the device there)", code)
	}
	if err := unix.Mknod(filepath.Join(root, "dev", "urandom"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 9))); err != nil {
		t.Fatalf("mknod /dev/urandom in the chroot: %v", err)
	}
	if err := os.Chmod(filepath.Join(root, "dev", "urandom"), 0o666); err != nil {
		t.Fatal(err)
	}
	if _, code := inChroot("version"); code != 0 {
		t.Fatalf("version: exit %d", code)
	}
	for _, method := range []string{"backup", "vacuum"} {
		out, code := inChroot("--source", "/data/app.db", "--backup-dir", "/backup", "--method", method)
		m := backupLine.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("backup --method %s: exit %d", method, code)
		}
		if _, code := inChroot("verify", m[1]); code != 0 {
			t.Fatalf("verify %s: exit %d", m[1], code)
		}
		countRows(t, filepath.Join(root, m[1]))
	}
	bad := filepath.Join(root, "backup", "bad.db")
	copyFile(t, filepath.Join(root, "data", "app.db"), bad, 0o644)
	corruptPage(t, bad, 3)
	if out, code := inChroot("verify", "/backup/bad.db"); code != 3 || !strings.Contains(out, "FAILED") {
		t.Errorf("verify of a corrupt file: exit %d, want 3 (documented: failed verification) and FAILED", code)
	}
}
