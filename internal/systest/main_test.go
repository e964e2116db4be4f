package systest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"sqlite-backup/internal/cli"
	"sqlite-backup/internal/testguard"
)

// TestMain makes the test binary double as the real sqlite-backup
// command and as the writer programs the tests start, each run as a
// separate process from a directory testscript puts on $PATH.
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){
		"sqlite-backup": func() {
			testguard.Install()
			os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
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
	return testguard.Run(c.m, func() {
		if bigPath != "" {
			os.RemoveAll(filepath.Dir(bigPath))
		}
		for _, d := range sharedDirs {
			os.RemoveAll(d)
		}
	})
}
