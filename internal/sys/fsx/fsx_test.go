package fsx

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCreateTemp(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077 &^ 0o070) // a umask that would strip group bits
	defer syscall.Umask(old)
	for _, perm := range []os.FileMode{0o600, 0o644} {
		f, err := CreateTemp(dir, "app.db", perm)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if !strings.HasPrefix(filepath.Base(f.Name()), TempPrefix+"app.db-") {
			t.Errorf("name %q lacks the prefix", f.Name())
		}
		fi, err := os.Stat(f.Name())
		if err != nil || fi.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v (%v)", fi.Mode().Perm(), perm, err)
		}
	}
	// A read-only directory: a bare error, for the caller to name.
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if _, err := CreateTemp(ro, "x", 0o600); err == nil || strings.Contains(err.Error(), ro) {
			t.Errorf("read-only dir: %v", err)
		}
	}
	if !SameFile(dir, dir+"/.") || SameFile(dir, ro) || SameFile(filepath.Join(dir, "missing"), filepath.Join(dir, "missing")+"/") {
		t.Error("SameFile")
	}
	if err := SyncDir(dir); err != nil {
		t.Error(err)
	}
	if err := SyncFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncFile of a missing file succeeded")
	}
}
