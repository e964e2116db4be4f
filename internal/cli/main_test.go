package cli

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary double as the real sqlite-backup
// command and as the helper programs the scripts start, each run as a
// separate process from a directory testscript puts on $PATH.
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){
		"sqlite-backup": func() {
			checkParsed = guardPaths
			os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr))
		},
		"sqlwriter": func() { os.Exit(writerMain(os.Args[1:])) },
	})
}

// cleanupM removes what tests share across the run (sharedBigDB, the
// copy of the tool for the user nobody).
type cleanupM struct{ m *testing.M }

// sharedDirs are removed after all tests ran.
var sharedDirs []string

func (c cleanupM) Run() int {
	guard, err := guardSetup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test guard:", err)
		return 1
	}
	code := c.m.Run()
	if found := guard(); len(found) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: tests touched the host outside their temp dirs:")
		for _, f := range found {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		code = 1
	}
	if bigPath != "" {
		os.RemoveAll(filepath.Dir(bigPath))
	}
	for _, d := range sharedDirs {
		os.RemoveAll(d)
	}
	return code
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "../../testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       os.Getenv("UPDATE_GOLDEN") != "",
		Setup: func(env *testscript.Env) error {
			// The guard (guard_test.go): a script's runs stay in $WORK.
			env.Setenv(guardLogEnv, os.Getenv(guardLogEnv))
			env.Setenv(guardRootEnv, env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"corrupt":    cmdCorrupt,
			"truncate":   cmdTruncate,
			"randbytes":  cmdRandBytes,
			"backupname": cmdBackupName,
			"flipbyte":   cmdFlipByte,
		},
	})
}

// corrupt FILE PAGE: overwrite one page (1-based, 4096-byte pages unless
// a third argument gives the size) with garbage, as a failing disk would.
func cmdCorrupt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: corrupt FILE PAGE [PAGESIZE]")
	}
	page, err := strconv.Atoi(args[1])
	ts.Check(err)
	size := 4096
	if len(args) > 2 {
		size, err = strconv.Atoi(args[2])
		ts.Check(err)
	}
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	junk := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(page), 7))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	_, err = f.WriteAt(junk, int64(page-1)*int64(size))
	ts.Check(err)
}

// truncate FILE SIZE
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

// randbytes FILE N: N deterministic pseudo-random bytes.
func cmdRandBytes(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: randbytes FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

var backupName = regexp.MustCompile(`^.+\.\d{8}_\d{6}(-\d+)?$`)

// backupname VAR DIR: set $VAR to the one timestamped backup in DIR; fail
// unless there is exactly one.
func cmdBackupName(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: backupname VAR DIR")
	}
	entries, err := os.ReadDir(ts.MkAbs(args[1]))
	ts.Check(err)
	var found []string
	for _, e := range entries {
		if backupName.MatchString(e.Name()) {
			found = append(found, filepath.Join(ts.MkAbs(args[1]), e.Name()))
		}
	}
	if len(found) != 1 {
		var names bytes.Buffer
		for _, e := range entries {
			fmt.Fprintln(&names, e.Name())
		}
		ts.Fatalf("want one backup in %s, found %d:\n%s", args[1], len(found), names.String())
	}
	ts.Setenv(args[0], found[0])
}

// flipbyte FILE OFFSET: invert every bit of one byte, as bit rot would.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	off, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	ts.Check(err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	ts.Check(err)
}

// doneWith names what was done before an error, shortened past five,
// and leaves the error as it is when nothing was.
func TestDoneWith(t *testing.T) {
	base := errors.New("context canceled")
	paths := func(n int) []string {
		var p []string
		for i := range n {
			p = append(p, fmt.Sprintf("/b/app.db.%d", i))
		}
		return p
	}
	for _, c := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{2, "already published: /b/app.db.0, /b/app.db.1"},
		{7, "already published: /b/app.db.0, /b/app.db.1, /b/app.db.2, /b/app.db.3, /b/app.db.4 and 2 more"},
	} {
		err := doneWith(base, "already published", paths(c.n))
		var d *doneBefore
		switch {
		case c.want == "" && (err != base || errors.As(err, &d)):
			t.Errorf("%d paths: %v wrapped, want it as it was", c.n, err)
		case c.want != "" && (!errors.As(err, &d) || d.done != c.want || !errors.Is(err, base)):
			t.Errorf("%d paths: got %#v, want done %q wrapping the error", c.n, err, c.want)
		}
	}
}
