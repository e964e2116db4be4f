package fsx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestRenameNoReplace: both ways of publishing a backup (renameat2 with
// RENAME_NOREPLACE, and link + unlink where the kernel lacks it: before
// Linux 3.15, or a file system without the flag) move a file to a free
// name and refuse a taken one with fs.ErrExist, leaving both files as
// they were.
func TestRenameNoReplace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rename func(string, string) error
	}{{"RenameNoReplace", RenameNoReplace}, {"linkRename", linkRename}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, data string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			read := func(p string) string {
				b, err := os.ReadFile(p)
				if err != nil {
					return "missing"
				}
				return string(b)
			}
			tmp, taken := write("tmp", "new"), write("taken", "old")
			if err := tc.rename(tmp, taken); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("onto a taken name: %v, want fs.ErrExist", err)
			}
			if read(tmp) != "new" || read(taken) != "old" {
				t.Fatalf("after a refused rename: tmp %q, taken %q", read(tmp), read(taken))
			}
			free := filepath.Join(dir, "free")
			if err := tc.rename(tmp, free); err != nil {
				t.Fatal(err)
			}
			if read(tmp) != "missing" || read(free) != "new" {
				t.Fatalf("after the rename: tmp %q, free %q", read(tmp), read(free))
			}
		})
	}
}
