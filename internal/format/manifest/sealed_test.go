package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"sqlite-backup/internal/format/encrypt"
)

// TestSealedManifest: Seal leaves nothing of the content in the written
// JSON, Open with a recipient's key restores exactly it, another key or
// a damaged seal is an error of its kind.
func TestSealedManifest(t *testing.T) {
	id1, _ := age.GenerateX25519Identity()
	id2, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	orig := Manifest{
		Version: Version, Backup: "app.db.20260101_000000.age", Source: "/srv/app.db", Verify: "ok",
		Content:        &Content{From: "source", Tables: []Table{{Name: "users", Rows: 3000, SHA256: "abcd"}}, SHA256: "ffff", Algorithm: "x"},
		ContentError:   "table secret_stuff unreadable",
		ShrinkWarnings: []Shrink{{Table: "users", Before: 3000, After: 10, Percent: 99.7}},
	}
	m := orig
	if err := m.Seal([]age.Recipient{id1.Recipient(), id2.Recipient()}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	backup := filepath.Join(dir, orig.Backup)
	if err := Write(backup, &m); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(backup + JSONSuffix)
	for _, leak := range []string{"users", "3000", "abcd", "ffff", "secret_stuff", "99.7", `"content"`, "shrink_warnings"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("written manifest contains %q in the clear:\n%s", leak, raw)
		}
	}
	for _, id := range []age.Identity{id1, id2} {
		got, err := Read(backup)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Flagged() {
			t.Errorf("sealed manifest lost the shrink flag: pruning without a key would not keep it")
		}
		if err := got.Open("m.json", []age.Identity{id}); err != nil {
			t.Fatal(err)
		}
		got.Encryption, got.Sealed, got.Shrank = "", "", false
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(orig)
		if string(a) != string(b) {
			t.Errorf("opened manifest differs:\n%s\nwant\n%s", a, b)
		}
	}
	got, _ := Read(backup)
	var we *encrypt.WrongIdentityError
	if err := got.Open("m.json", []age.Identity{other}); !errors.As(err, &we) {
		t.Errorf("other key: %v, want a WrongIdentityError", err)
	}
	got.Sealed = got.Sealed[:len(got.Sealed)-8] + "AAAAAAA="
	var ce *encrypt.CorruptError
	if err := got.Open("m.json", []age.Identity{id1}); !errors.As(err, &ce) {
		t.Errorf("damaged seal: %v, want a CorruptError", err)
	}
	plain := orig
	if err := plain.Open("m.json", nil); err != nil || plain.Content == nil {
		t.Errorf("Open of an unsealed manifest: %v, content %v", err, plain.Content)
	}
}
