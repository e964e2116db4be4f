package systest

// Proofs for the release promise "scp one file to any Linux host and run
// it": the amd64 binary is statically linked and does a full backup and
// verify inside an empty chroot (no libc, no /etc, no /tmp, no /dev), and
// the other architectures do the same under qemu-user.
//
// Without SQLITE_BACKUP_DIST the amd64 binary is built here (cheap with a
// warm build cache) and the cross-built ones are skipped. .ci/run builds
// the release archives with scripts/dist.sh and sets SQLITE_BACKUP_DIST
// to their directory; then a missing chroot privilege or qemu is a
// failure, not a skip.

import (
	"archive/tar"
	"compress/gzip"
	"database/sql"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// distDir is where scripts/dist.sh put the archives, if the caller says.
func distDir() string { return os.Getenv("SQLITE_BACKUP_DIST") }

// releaseBinary returns the sqlite-backup binary for arch ("amd64",
// "arm64", "386", "armv7", "armv6") from the dist archives, or builds
// the amd64 one when no dist directory is given.
func releaseBinary(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	if d := distDir(); d != "" {
		m, _ := filepath.Glob(filepath.Join(d, "sqlite-backup_*_linux_"+arch+".tar.gz"))
		if len(m) != 1 {
			t.Fatalf("want one linux_%s archive in %s, found %v", arch, d, m)
		}
		return extractBinary(t, m[0], dir)
	}
	if arch != "amd64" {
		t.Skipf("no %s binary: run scripts/dist.sh and set SQLITE_BACKUP_DIST=dist", arch)
	}
	exe := filepath.Join(dir, "sqlite-backup")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X sqlite-backup/internal/cli.version=0.0.0-test -X sqlite-backup/internal/cli.commit=0123456789abcdef0123456789abcdef01234567 -X sqlite-backup/internal/cli.date=2026-01-02T03:04:05Z", "-o", exe, "sqlite-backup")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

func extractBinary(t *testing.T, archive, dir string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	tr := tar.NewReader(zr)
	var names []string
	exe := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		names = append(names, h.Name)
		if filepath.Base(h.Name) != "sqlite-backup" {
			continue
		}
		exe = filepath.Join(dir, "sqlite-backup")
		out, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
	want := strings.TrimSuffix(filepath.Base(archive), ".tar.gz")
	for _, n := range []string{"sqlite-backup", "README.md", "LICENSE", "docs/OPERATIONS.md", "docs/RESTORE.md"} {
		if !slices.Contains(names, want+"/"+n) {
			t.Errorf("%s lacks %s/%s; has %v", archive, want, n, names)
		}
	}
	if exe == "" {
		t.Fatalf("%s holds no sqlite-backup binary", archive)
	}
	return exe
}

// TestStaticHoweverBuilt: no way of building the command yields a
// dynamically linked binary. With cgo on and nothing else, the build
// stops at cgo_guard.go with a name that says what to do; with cgo on
// and -tags netgo,osusergo (nothing then uses cgo) it is static; with
// CGO_ENABLED=0 it is static (releaseBinary, TestReleaseStatic).
func TestStaticHoweverBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command twice")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	build := func(exe string, args ...string) (string, error) {
		cmd := exec.Command("go", append(append([]string{"build", "-o", exe}, args...), "sqlite-backup")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	plain := filepath.Join(dir, "plain")
	out, err := build(plain)
	switch {
	case err == nil:
		checkStatic(t, plain, elf.EM_X86_64)
		t.Errorf("go build with cgo on succeeded: it must stop at cgo_guard.go")
	case strings.Contains(out, "build_with_CGO_ENABLED_0_see_README"):
	case strings.Contains(out, "C compiler") || strings.Contains(out, "gcc"):
		t.Skipf("no C compiler: a cgo build cannot be tried here:\n%s", out)
	default:
		t.Fatalf("go build with cgo on failed, but not at the guard:\n%s", out)
	}
	tagged := filepath.Join(dir, "tagged")
	if out, err := build(tagged, "-tags", "netgo,osusergo"); err != nil {
		t.Fatalf("go build -tags netgo,osusergo with cgo on: %v\n%s", err, out)
	}
	checkStatic(t, tagged, elf.EM_X86_64)
}

// checkStatic fails unless exe is an ELF that needs no dynamic loader
// and no shared library.
func checkStatic(t *testing.T, exe string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatalf("%s: %v", exe, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v", exe, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has a PT_INTERP program header: it needs a dynamic loader", exe)
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has a PT_DYNAMIC program header: it is dynamically linked", exe)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("%s: %v", exe, err)
	}
	if len(libs) > 0 {
		t.Errorf("%s: DT_NEEDED %v", exe, libs)
	}
}

// makeTestDB writes a WAL database whose index (3 MB of keys) is larger
// than SQLite's default 2 MB page cache, so that rebuilding it (VACUUM
// INTO) sorts more than fits in memory: SQLite then wants a temp file.
func makeTestDB(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rows = 20000
	stmts := []string{
		"PRAGMA journal_mode=WAL",
		"CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB)",
		fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d)
			INSERT INTO t(k, v) SELECT hex(randomblob(80)), randomblob(100) FROM n`, rows),
		"CREATE INDEX t_k ON t(k)",
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return rows
}

// countRows asks the independent C sqlite3 CLI to check a backup and
// count its rows.
func countRows(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("sqlite3 CLI not installed: scripts/install-deps.sh installs it")
	}
	out, err := exec.Command("sqlite3", path, "PRAGMA integrity_check; SELECT count(*) FROM t;").CombinedOutput()
	if err != nil || string(out) != "ok\n20000\n" {
		t.Errorf("sqlite3 %s: %v\n%s", path, err, out)
	}
}

var (
	versionOut     = regexp.MustCompile(`^sqlite-backup \d+\.\d+\.\d+\S*\ncommit:  [0-9a-f]{40}(-dirty)?\nbuilt:   \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\ngo:      go1\.\d+\S*\nsqlite:  3\.\d+\.\d+ .*\nplatform: linux/amd64\n$`)
	versionLineOut = regexp.MustCompile(`^sqlite-backup \d+\.\d+\.\d+\S* \(commit [0-9a-f]{40}(-dirty)?, built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, go go1\.\d+\S*, sqlite 3\.\d+\.\d+, linux/amd64\)\n$`)
)

var backupLine = regexp.MustCompile(`(?m)^(/backup/app\.db\.\d{8}_\d{6}(-\d+)?): integrity_check ok, \d+ bytes`)

func TestReleaseStaticChroot(t *testing.T) {
	exe := releaseBinary(t, "amd64")
	checkStatic(t, exe, elf.EM_X86_64)

	if os.Geteuid() != 0 {
		if distDir() != "" {
			t.Fatal("the chroot proof needs root (CI runs as root)")
		}
		t.Skip("chroot needs root")
	}
	// The whole file system the tool sees: the binary, a database and an
	// empty backup directory. No /etc, /tmp, /dev, /proc, libc or shell.
	root := t.TempDir()
	copyFile(t, exe, filepath.Join(root, "sqlite-backup"), 0o755)
	for _, d := range []string{"data", "backup"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeTestDB(t, filepath.Join(root, "data", "app.db"))
	// Run as nobody, as a hardened service would: the root directory
	// (the last resort for SQLite's temp files) is not writable then.
	const nobody = 65534
	for _, d := range []string{"data", "backup"} {
		if err := os.Chown(filepath.Join(root, d), nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"app.db", "app.db-wal", "app.db-shm"} {
		os.Chown(filepath.Join(root, "data", f), nobody, nobody)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("chroot holds only: %v", names)

	inChroot := func(args ...string) (string, error) {
		cmd := &exec.Cmd{
			Path: "/sqlite-backup",
			Args: append([]string{"sqlite-backup"}, args...),
			Dir:  "/",
			Env:  []string{}, // no TMPDIR, no HOME, no PATH
			SysProcAttr: &syscall.SysProcAttr{
				Chroot:     root,
				Credential: &syscall.Credential{Uid: nobody, Gid: nobody},
			},
		}
		out, err := cmd.CombinedOutput()
		t.Logf("chroot$ sqlite-backup %s\n%s", strings.Join(args, " "), out)
		return string(out), err
	}

	// What dist.sh stamped in with -ldflags -X is what version prints.
	out, err := inChroot("version")
	if err != nil || !versionOut.MatchString(out) {
		t.Errorf("version in the chroot: %v; want it to match %s", err, versionOut)
	}
	out, err = inChroot("--version")
	if err != nil || !versionLineOut.MatchString(out) {
		t.Errorf("--version in the chroot: %v; want it to match %s", err, versionLineOut)
	}

	for _, method := range []string{"backup", "vacuum"} {
		out, err = inChroot("--source", "/data/app.db", "--backup-dir", "/backup", "--method", method)
		if err != nil {
			t.Fatalf("backup --method %s in an empty chroot: %v", method, err)
		}
		m := backupLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no backup line in: %s", out)
		}
		if _, err := inChroot("verify", m[1]); err != nil {
			t.Fatalf("verify in an empty chroot: %v", err)
		}
		countRows(t, filepath.Join(root, m[1]))
		os.Remove(filepath.Join(root, m[1]))
	}
	// A corrupt file must still fail there: the chroot run is not a
	// vacuous pass.
	bad := filepath.Join(root, "backup", "bad.db")
	copyFile(t, filepath.Join(root, "data", "app.db"), bad, 0o644)
	corruptPage(t, bad, 3)
	out, err = inChroot("verify", "/backup/bad.db")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(out, "FAILED") {
		t.Errorf("verify of a corrupt file in the chroot: err %v, want exit 3 (documented: failed verification) and FAILED", err)
	}
}

func TestReleaseCrossQemu(t *testing.T) {
	for _, tc := range []struct {
		arch, qemu, goarch string
		machine            elf.Machine
	}{
		{"arm64", "qemu-aarch64-static", "arm64", elf.EM_AARCH64},
		{"armv7", "qemu-arm-static", "arm", elf.EM_ARM},
		{"armv6", "qemu-arm-static", "arm", elf.EM_ARM},
		// 386 runs natively on an amd64 kernel with IA32 emulation.
		// qemu-i386 (7.2, Debian 12) is no way out: it crashes every Go
		// 386 binary, hello world included ("morestack on g0").
		{"386", "", "386", elf.EM_386},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			exe := releaseBinary(t, tc.arch)
			checkStatic(t, exe, tc.machine)
			argv := []string{exe}
			if tc.qemu != "" {
				qemu, err := exec.LookPath(tc.qemu)
				if err != nil {
					t.Fatalf("%s not found: scripts/install-deps.sh installs qemu-user-static", tc.qemu)
				}
				argv = []string{qemu, exe}
			} else if err := exec.Command(exe, "version").Run(); errors.Is(err, syscall.ENOEXEC) {
				t.Skipf("this kernel cannot run %s binaries (no IA32 emulation); the static ELF check above passed", tc.arch)
			}
			dir := t.TempDir()
			src := filepath.Join(dir, "app.db")
			makeTestDB(t, src)
			run := func(args ...string) string {
				cmd := exec.Command(argv[0], append(argv[1:], args...)...)
				cmd.Env = []string{}
				out, err := cmd.CombinedOutput()
				t.Logf("%s sqlite-backup %s\n%s", tc.qemu, strings.Join(args, " "), out)
				if err != nil {
					t.Fatalf("%v", err)
				}
				return string(out)
			}
			out := run("version")
			if !strings.Contains(out, "platform: linux/"+tc.goarch+"\n") {
				t.Errorf("version of the %s binary does not say linux/%s", tc.arch, tc.goarch)
			}
			backupDir := filepath.Join(dir, "backup")
			out = run("--source", src, "--backup-dir", backupDir)
			m := regexp.MustCompile(`(?m)^(\S+): integrity_check ok`).FindStringSubmatch(out)
			if m == nil || filepath.Dir(m[1]) != backupDir {
				t.Fatalf("no backup line in: %s", out)
			}
			run("verify", m[1])
			countRows(t, m[1])
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func corruptPage(t *testing.T, path string, page int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(junk, (page-1)*4096); err != nil {
		t.Fatal(err)
	}
}
