package fsx

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A live HeldDir stays whatever RemoveDead is asked; once released it is
// gone. An unlocked one (its run died) is removed with what it holds;
// a file or a symlink with the prefix, and other names, are left alone.
func TestHeldDir(t *testing.T) {
	dir := t.TempDir()
	live, err := MkdirHeld(dir, CheckDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(live.Path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("held dir %s: %v %v", live.Path, fi, err)
	}
	os.WriteFile(filepath.Join(live.Path, "plain.db"), []byte("secret"), 0o600)

	dead := filepath.Join(dir, FetchDirPrefix+"dead")
	os.MkdirAll(filepath.Join(dead, "sub"), 0o700)
	os.WriteFile(filepath.Join(dead, "sub", "f"), nil, 0o600)
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "keep"), nil, 0o600)
	os.Symlink(target, filepath.Join(dir, CheckDirPrefix+"link"))
	os.WriteFile(filepath.Join(dir, CheckDirPrefix+"file"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "other"), 0o700)

	got := RemoveDead(dir)
	if !slices.Equal(got, []string{FetchDirPrefix + "dead"}) {
		t.Errorf("RemoveDead removed %v, want only the dead one", got)
	}
	for _, p := range []string{live.Path, filepath.Join(live.Path, "plain.db"), filepath.Join(dir, CheckDirPrefix+"link"), filepath.Join(target, "keep"), filepath.Join(dir, CheckDirPrefix+"file"), filepath.Join(dir, "other")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: gone (%v)", p, err)
		}
	}
	if _, err := os.Lstat(dead); err == nil {
		t.Errorf("%s: the dead run's directory is still there", dead)
	}
	live.Release()
	if _, err := os.Lstat(live.Path); err == nil {
		t.Errorf("%s: still there after Release", live.Path)
	}
	live.Release() // twice is harmless
}
