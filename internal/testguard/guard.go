// Package testguard keeps every test run of the tool inside its test's
// temp dirs: the test binaries that double as sqlite-backup (the
// end-to-end goldens at the root, internal/systest) install it.
package testguard

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"sqlite-backup/internal/cli"
)

// The guard: no test may touch anything outside its own temp dirs. Two
// layers. Every run of the tool in the tests (scripts and Go tests alike
// start the test binary as sqlite-backup) checks, before it does
// anything, that each path it would write or list (--backup-dir, even
// when left at its default /backup, --backup, --to, --metrics-file,
// --temp-dir) lies under the test's temp root; a run that would not is
// refused and logged, and the log fails the whole test binary. And the
// binary itself checks that /backup and the default config file did not
// appear while it ran, and gives its subprocesses a HOME and XDG dirs of
// their own.
const (
	LogEnv  = "SBTEST_GUARD_LOG" // not SQLITE_BACKUP_*: toolEnv strips those
	RootEnv = "SBTEST_ROOT"
)

// hostPaths must not appear during a test run.
var hostPaths = []string{"/backup", "/etc/sqlite-backup.toml"}

// Setup runs once in the parent test process; the returned func reports
// what the guard found. dir holds the guard's log and the tests' HOME:
// the caller removes it after the check.
func Setup() (check func() []string, dir string, err error) {
	dir, err = os.MkdirTemp("", "sqlite-backup-guard-")
	if err != nil {
		return nil, "", err
	}
	// The tool also runs as the user nobody: the log is for everyone.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(dir, "violations")
	if err := os.WriteFile(logPath, nil, 0o666); err != nil {
		return nil, "", err
	}
	if err := os.Chmod(logPath, 0o666); err != nil {
		return nil, "", err
	}
	// Keep Go's caches where they are (release_test builds the binary;
	// a cold cache takes minutes), then move HOME and XDG dirs away.
	if os.Getenv("GOCACHE") == "" {
		if c, err := os.UserCacheDir(); err == nil {
			os.Setenv("GOCACHE", filepath.Join(c, "go-build"))
		}
	}
	if os.Getenv("GOENV") == "" { // go env -w settings (GOFLAGS, GOTOOLCHAIN)
		if c, err := os.UserConfigDir(); err == nil {
			os.Setenv("GOENV", filepath.Join(c, "go", "env"))
		}
	}
	if os.Getenv("GOPATH") == "" {
		if h, err := os.UserHomeDir(); err == nil {
			os.Setenv("GOPATH", filepath.Join(h, "go"))
		}
	}
	home := filepath.Join(dir, "home")
	for _, d := range []string{"", ".config", ".cache", ".local/share", ".local/state"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			return nil, "", err
		}
	}
	os.Setenv("HOME", home)
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	os.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	os.Setenv("XDG_DATA_HOME", filepath.Join(home, ".local/share"))
	os.Setenv("XDG_STATE_HOME", filepath.Join(home, ".local/state"))
	os.Setenv(LogEnv, logPath)
	os.Setenv(RootEnv, filepath.Clean(os.TempDir()))

	existed := map[string]bool{}
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		existed[p] = err == nil
	}
	return func() []string {
		var found []string
		for _, p := range hostPaths {
			if _, err := os.Lstat(p); err == nil && !existed[p] {
				found = append(found, p+" was created during the test run")
			}
		}
		b, _ := os.ReadFile(logPath)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				found = append(found, l)
			}
		}
		return found
	}, dir, nil
}

// Install makes every later cli.Run in this process check its parsed
// command line with Paths: call it where the test binary runs as
// sqlite-backup.
func Install() { cli.CheckParsed = Paths }

// Paths refuses a run that would write (or list) outside the temp root,
// and logs it.
func Paths(kctx *kong.Context) error {
	logPath, root := os.Getenv(LogEnv), os.Getenv(RootEnv)
	if logPath == "" || root == "" {
		return nil // run by hand, not by the tests
	}
	cmd := strings.Fields(kctx.Command())
	if len(cmd) == 0 {
		return nil
	}
	names := []string{"backup", "to", "metrics-file", "temp-dir"}
	switch cmd[0] {
	case "backup", "prune", "list", "restore":
		names = append(names, "backup-dir")
	default: // verify, config, systemd, version, completion, help: write nothing
		return nil
	}
	var bad []string
	// restore, list or prune of a remote given on the command line (as
	// the commands decide it), and list of a Litestream replica
	// ("list <replica>"), do not use --backup-dir.
	skipDir := cmd[0] == "restore" ||
		((cmd[0] == "list" || cmd[0] == "prune") && remoteFromFlag(kctx)) ||
		(cmd[0] == "list" && len(cmd) > 1)
	for _, f := range kctx.Flags() {
		switch v := f.Target.Interface().(type) {
		case []string: // --verify FILE: backup-dir is not used
			skipDir = skipDir || (f.Name == "verify" && len(v) > 0)
		case string: // --backup FILE: neither
			skipDir = skipDir || (f.Name == "backup" && v != "")
		}
	}
	for _, f := range kctx.Flags() {
		if !slices.Contains(names, f.Name) {
			continue
		}
		v, _ := f.Target.Interface().(string)
		if v == "" || (f.Name == "backup-dir" && skipDir) {
			continue
		}
		abs, err := filepath.Abs(v)
		if err != nil {
			continue
		}
		if r, err := filepath.Rel(root, abs); err != nil || r == ".." || strings.HasPrefix(r, "../") {
			bad = append(bad, fmt.Sprintf("--%s %s", f.Name, abs))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	msg := fmt.Sprintf("test guard: %q would touch %s, outside the test's temp dirs (%s)", strings.Join(os.Args[1:], " "), strings.Join(bad, ", "), root)
	if f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		fmt.Fprintln(f, msg)
		f.Close()
	}
	return fmt.Errorf("%s", msg)
}

// remoteFromFlag says whether --remote was given on the command line (not
// resolved from the config file or the environment).
func remoteFromFlag(kctx *kong.Context) bool {
	for _, p := range kctx.Path {
		if p.Flag != nil && p.Flag.Name == "remote" {
			return !p.Resolved
		}
	}
	return false
}

// Run runs the tests of m inside the guard and fails the run when any
// test touched the host; cleanup (if not nil) runs after the check.
func Run(m interface{ Run() int }, cleanup func()) int {
	check, dir, err := Setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test guard:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	code := m.Run()
	if found := check(); len(found) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: tests touched the host outside their temp dirs:")
		for _, f := range found {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		code = 1
	}
	if cleanup != nil {
		cleanup()
	}
	return code
}
