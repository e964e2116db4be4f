//go:build unix

package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestPrefix(t *testing.T) {
	dir := t.TempDir()
	stream, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	other, err := os.Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	fi, _ := stream.Stat()
	st := fi.Sys().(*syscall.Stat_t)

	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if got := Prefix(stream, Err); got != "<3>" {
		t.Errorf("the journal stream: Prefix = %q, want <3>", got)
	}
	// Inherited by a child whose stderr goes elsewhere: no prefix.
	if got := Prefix(other, Err); got != "" {
		t.Errorf("another file: Prefix = %q", got)
	}
	if got := Prefix(&bytes.Buffer{}, Err); got != "" {
		t.Errorf("a buffer: Prefix = %q", got)
	}
	t.Setenv("JOURNAL_STREAM", "garbage")
	if got := Prefix(stream, Err); got != "" {
		t.Errorf("bad JOURNAL_STREAM: Prefix = %q", got)
	}
	t.Setenv("JOURNAL_STREAM", "")
	if got := Prefix(stream, Err); got != "" {
		t.Errorf("no JOURNAL_STREAM: Prefix = %q", got)
	}
}
