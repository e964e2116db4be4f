package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoteSmoke runs the benchmarks against loopback servers (-remote,
// -remote -restore, -litestream) on a 4 MB database, one round, so CI
// proves they still read the tool's --json and finish: -remote parsed a
// report shape the tool no longer printed and failed on its first case
// before this test. It checks the report's summary lines, never a time.
func TestRemoteSmoke(t *testing.T) {
	need := []string{"sftp", "scp", "rclone", "sshd", "versitygw"}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	ls := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "litestream")
	for _, tool := range need {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(gopath)), "bin", tool)); err == nil {
				continue
			}
			if _, err := os.Stat("/usr/sbin/" + tool); err == nil {
				continue
			}
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed: run scripts/install-deps.sh", tool)
			}
			t.Skipf("%s not installed (scripts/install-deps.sh)", tool)
		}
	}
	bin := filepath.Join(t.TempDir(), "sqlite-backup")
	if err := buildBinary(bin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func(config, *bytes.Buffer) error
		want []string
	}{
		{"remote", func(c config, b *bytes.Buffer) error { return runRemote(c, b) }, []string{"| sqlite-backup → sftp |", "| sqlite-backup → s3 |", "(target ≤ 1.25×); s3: "}},
		{"restore", func(c config, b *bytes.Buffer) error { c.restore = true; return runRemoteRestore(c, b) }, []string{"restore: s3 ", "verify: s3 ", "(target ≤ 1.0×)"}},
		{"litestream", func(c config, b *bytes.Buffer) error { return runLitestream(c, b) }, []string{"| litestream restore |", "× litestream restore -integrity-check full (target ≤ 1.0×"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "litestream" {
				if _, err := os.Stat(ls); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatalf("litestream not in %s: run scripts/install-deps.sh", ls)
					}
					t.Skip("litestream not installed (scripts/install-deps.sh)")
				}
			}
			var out bytes.Buffer
			c := config{sizeMB: 4, rounds: 1, dir: t.TempDir(), bin: bin}
			if err := tc.run(c, &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
