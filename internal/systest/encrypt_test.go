package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptMidEncryption: SIGINT and SIGTERM while the verified copy
// is being encrypted remove both temp files (the plaintext copy and the
// half-written ciphertext) and publish nothing.
func TestInterruptMidEncryption(t *testing.T) {
	if _, err := exec.LookPath("age-keygen"); err != nil {
		t.Skip("age not installed (scripts/install-deps.sh)")
	}
	src := sharedBigDB(t)
	sum := fileSum(t, src)
	key := filepath.Join(t.TempDir(), "key.txt")
	if out, err := exec.Command("age-keygen", "-o", key).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v: %s", err, out)
	}
	pub, err := exec.Command("age-keygen", "-y", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := command(t, runOpts{}, "sqlite-backup", "--source", src, "--backup-dir", out, "--compress", "zstd", "-r", strings.TrimSpace(string(pub)))
			var se strings.Builder
			cmd.Stderr = &se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Mid-encryption: the verified copy and a second temp file
			// with data in it.
			deadline := time.Now().Add(60 * time.Second)
			for {
				ts := tempsIn(t, out)
				if len(ts) == 2 {
					a, _ := os.Stat(filepath.Join(out, ts[0]))
					b, _ := os.Stat(filepath.Join(out, ts[1]))
					if a != nil && b != nil && a.Size() > 0 && b.Size() > 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("no encryption temp file with data appeared")
				}
				time.Sleep(200 * time.Microsecond)
			}
			cmd.Process.Signal(tc.sig)
			err := cmd.Wait()
			code := 0
			if err != nil {
				code = cmd.ProcessState.ExitCode()
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, se.String())
			}
			nothingLeft(t, out, src, sum)
		})
	}
}
