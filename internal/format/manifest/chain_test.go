package manifest

import (
	"path/filepath"
	"reflect"
	"testing"

	"filippo.io/age"
)

// TestChainInTheClear: a point's place in its chain is written and read
// back whole, and stays in the clear when the rest is sealed: restore,
// verify and pruning follow the chain without a key.
func TestChainInTheClear(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	c := &Chain{Kind: KindIncrement, Seq: 3, Parent: "app.db.20260101_020000.ltx", Base: "app.db.20260101_000000",
		PageSize: 4096, Pages: 1000, Changed: 12, State: "8000000000000001", PreState: "8000000000000002",
		IndexSHA256: "ab", Read: "file", Proof: "state"}
	m := &Manifest{Version: Version, Backup: "app.db.20260101_030000.ltx.age", Content: &Content{From: "source"}, Chain: c}
	if err := m.Seal([]age.Recipient{id.Recipient()}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), m.Backup)
	if err := Write(backup, m); err != nil {
		t.Fatal(err)
	}
	got, err := Read(backup)
	if err != nil {
		t.Fatal(err)
	}
	if got.Content != nil || !reflect.DeepEqual(got.Chain, c) {
		t.Fatalf("read back content %v, chain %+v", got.Content, got.Chain)
	}
}
