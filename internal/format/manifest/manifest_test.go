package manifest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestSHA256Sidecar(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.db.20250101_000000")
	if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSHA256(p); !errors.Is(err, ErrNoSHA256) {
		t.Fatalf("no sidecar: %v", err)
	}
	sum, err := FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSHA256(p, sum); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSHA256(p)
	if err != nil || got != sum {
		t.Fatalf("ReadSHA256 = %s %v, want %s", got, err, sum)
	}
	// sha256sum itself agrees, from inside the directory.
	if sha, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(sha, "-c", filepath.Base(p)+".sha256")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
	// Written by sha256sum in binary mode, or with a path: still read.
	for _, line := range []string{sum + " *" + filepath.Base(p), sum + "  " + p} {
		if err := os.WriteFile(p+".sha256", []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadSHA256(p); err != nil || got != sum {
			t.Errorf("%q: %s %v", line, got, err)
		}
	}
	// A line for another file is not a checksum of this one.
	os.WriteFile(p+".sha256", []byte(sum+"  other.db\n"), 0o600)
	if _, err := ReadSHA256(p); err == nil {
		t.Error("accepted a sidecar naming another file")
	}
}

func TestManifestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b")
	m := &Manifest{Version: Version, Backup: "b", Source: "/srv/app.db", Content: &Content{Tables: []Table{{Name: "t", Rows: 3}, {Name: "u", Rows: 4}}}}
	if err := Write(p, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p + JSONSuffix)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest mode %v %v", fi.Mode(), err)
	}
	got, err := Read(p)
	if err != nil || got.Source != m.Source || got.Content.TotalRows() != 7 {
		t.Fatalf("Read = %+v %v", got, err)
	}
	// No temp files left behind.
	es, _ := os.ReadDir(filepath.Dir(p))
	if len(es) != 1 {
		t.Errorf("dir holds %d files, want the manifest only", len(es))
	}
}
