package hint

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A quoted word reaches a program as exactly itself through sh, and runs
// nothing on the way; a quoted glob still matches.
func TestQuoteThroughShell(t *testing.T) {
	dir := t.TempDir()
	words := []string{
		"plain/path.db", "", "with space", "x$(touch pwned)", "x`touch pwned`",
		"it's", `"dq"`, "semi;touch pwned", "new\nline", "back\\slash", "-dash", "~tilde", "glob*?[a]", "ünï",
	}
	for _, w := range words {
		cmd := exec.Command("sh", "-c", "printf '%s\\n' "+Quote(w)+" >out")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sh -c with %q: %v\n%s", w, err, b)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "out"))
		if string(got) != w+"\n" {
			t.Errorf("Quote(%q) = %s reached the program as %q", w, Quote(w), got)
		}
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Fatalf("Quote(%q) = %s ran a command", w, Quote(w))
		}
	}
	sub := filepath.Join(dir, "a b$(touch pwned)")
	os.MkdirAll(filepath.Join(sub, "x"), 0o755)
	os.WriteFile(filepath.Join(sub, "x", "app.db"), nil, 0o644)
	cmd := exec.Command("sh", "-c", "ls "+QuoteGlob(filepath.Join(sub, "*", "app.db")))
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "app.db") {
		t.Errorf("QuoteGlob: ls %s: %v\n%s", QuoteGlob(filepath.Join(sub, "*", "app.db")), err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("QuoteGlob ran a command")
	}
}
