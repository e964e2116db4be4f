package fsx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, f := range []struct{ path, data string }{{a, "new"}, {b, "published"}} {
		if err := os.WriteFile(f.path, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, rename := range map[string]func(string, string) error{"renameat2": RenameNoReplace, "link": linkRename} {
		if err := rename(a, b); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s over an existing file: %v, want fs.ErrExist", name, err)
		}
		if got, _ := os.ReadFile(b); string(got) != "published" {
			t.Errorf("%s replaced the published file: %q", name, got)
		}
	}
	c := filepath.Join(dir, "c")
	if err := RenameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old name still there: %v", err)
	}
	if got, _ := os.ReadFile(c); string(got) != "new" {
		t.Errorf("renamed file holds %q", got)
	}
}
