package hint

import (
	"os/exec"
	"testing"
)

// TestQuote: what sh reads back from a quoted word is the word itself,
// and nothing in it runs.
func TestQuote(t *testing.T) {
	for _, s := range []string{"/backup/app.db", "sftp://u@h:22/srv/b", "", "a b", "it's", "x$(touch y)", "`id`", "a\nb", "-x", "~root", "*"} {
		out, err := exec.Command("sh", "-c", "printf '%s' "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) = %s: sh read %q, %v", s, Quote(s), out, err)
		}
	}
}
