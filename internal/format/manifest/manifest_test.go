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

// sidecarNames are database file names that broke parsing by whitespace
// or would break a line-based format.
var sidecarNames = []string{
	"my app.db", "two  spaces.db", "trailing .db", " leading.db", `it's "quoted".db`,
	"überdatenbank-日本.db", "-leading-dash.db", "*star.db", `back\slash.db`, "new\nline.db", "carriage\rreturn.db", "tab\there.db",
}

// TestSHA256SidecarNames: a sidecar written for any file name is read
// back by this package and accepted by the real `sha256sum --strict -c`
// run in the directory; lines that sha256sum writes itself (text and
// binary mode, escaped names) are parsed to the same name and sum.
func TestSHA256SidecarNames(t *testing.T) {
	sha, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatal("sha256sum (coreutils) is needed")
	}
	dir := t.TempDir()
	for _, db := range sidecarNames {
		name := db + ".20250101_000000"
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("content of "+db), 0o600); err != nil {
			t.Fatal(err)
		}
		sum, _ := FileSHA256(p)
		if err := WriteSHA256(p, sum); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadSHA256(p); err != nil || got != sum {
			t.Errorf("%q: ReadSHA256 = %q, %v; want %s", name, got, err, sum)
		}
		cmd := exec.Command(sha, "--strict", "-c", "--", name+SHA256Suffix)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%q: sha256sum -c on the sidecar: %v\n%s", name, err, out)
		}
		for _, mode := range []string{"-t", "-b"} {
			cmd := exec.Command(sha, mode, "--", name)
			cmd.Dir = dir
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("sha256sum %s %q: %v", mode, name, err)
			}
			gs, gn, ok := ParseSHA256Line(string(out))
			if !ok || gs != sum || gn != name {
				t.Errorf("sha256sum %s wrote %q: parsed %q %q %v", mode, out, gs, gn, ok)
			}
		}
	}
}

func TestParseSHA256Line(t *testing.T) {
	h := "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
	for _, c := range []struct {
		line, name string
		ok         bool
	}{
		{h + "  a b", "a b", true},
		{h + " *a b", "a b", true},
		{h + " a b", "a b", true},     // one blank, no mode character
		{h + "\ta b", "a b", true},    // a tab is a blank too
		{h + "  a b ", "a b ", true},  // trailing space is part of the name
		{"  " + h + "  x", "x", true}, // leading blanks skipped
		{h + "   x", " x", true},      // a name that starts with a space
		{h + "  -x", "-x", true},      // a leading dash is a name
		{"\\" + h + "  a\\\\b\\nc", "a\\b\nc", true},
		{"\\" + h + "  a\\tb", "", false}, // only \\ \n \r are escapes
		{"\\" + h + "  ab\\", "", false},
		{h[:63] + "   x", "", false},
		{h + "x  x", "", false},
		{"zz" + h[2:] + "  x", "", false},
		{h + "  ", " ", true}, // as for sha256sum -c: a file named " "
		{h + " ", "", false},
		{h, "", false},
		{"", "", false},
	} {
		_, name, ok := ParseSHA256Line(c.line)
		if ok != c.ok || name != c.name {
			t.Errorf("%q: %q %v, want %q %v", c.line, name, ok, c.name, c.ok)
		}
	}
}
