package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"sqlite-backup/internal/testguard"
)

// TestMain makes the test binary double as the real sqlite-backup (this
// package's main, inside the test guard), run as a separate process from
// a directory testscript puts on $PATH. The system suites are in
// internal/systest.
func TestMain(m *testing.M) {
	testscript.Main(guarded{m}, map[string]func(){
		"sqlite-backup": func() {
			testguard.Install()
			main()
		},
	})
}

// guarded runs the tests inside the guard (internal/testguard).
type guarded struct{ m *testing.M }

func (g guarded) Run() int { return testguard.Run(g.m, nil) }

// TestScripts runs the end-to-end goldens in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       os.Getenv("UPDATE_GOLDEN") != "",
		Setup: func(env *testscript.Env) error {
			// The guard (guard_test.go): a script's runs stay in $WORK.
			env.Setenv(testguard.LogEnv, os.Getenv(testguard.LogEnv))
			env.Setenv(testguard.RootEnv, env.WorkDir)
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
