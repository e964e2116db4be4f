//go:build unix

package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Under systemd, errors reach the journal as priority err ("<3>"), hints
// as notice; anywhere else the lines are unchanged.
func TestErrorsCarryJournalPriority(t *testing.T) {
	dir := t.TempDir()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	fi, _ := stderr.Stat()
	st := fi.Sys().(*syscall.Stat_t)
	args := []string{"--source", filepath.Join(dir, "missing.db"), "--backup-dir", dir}

	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if code := Run(args, io.Discard, stderr); code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
	b, _ := os.ReadFile(stderr.Name())
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "<3>sqlite-backup: error: open source ") || !strings.HasPrefix(lines[1], "<5>hint: ") {
		t.Errorf("to the journal:\n%s", b)
	}

	// The same run with stderr elsewhere (a terminal, cron's mail).
	other, err := os.Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	Run(args, io.Discard, other)
	b, _ = os.ReadFile(other.Name())
	if !strings.HasPrefix(string(b), "sqlite-backup: error: open source ") || strings.Contains(string(b), "<") {
		t.Errorf("not to the journal:\n%s", b)
	}
}
