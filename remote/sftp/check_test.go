package sftp_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
)

// TestCheck: the preflight accepts a reachable, trusted, writable
// directory and leaves nothing in it; it names an unknown host key, a
// missing directory, a file given as the directory and a read-only
// account (internal-sftp -R) the way Put would, none retried.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	s := testserver.StartSSHD(t)
	ro := testserver.StartSSHD(t, "ForceCommand internal-sftp -R")
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(filepath.Join(s.Dir, "file"), []byte("x"), 0o600)
	check := func(url, kh, key string) error {
		r, err := remote.Open(ctx, url, remote.Options{SSHKey: key, KnownHosts: kh})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		c, ok := r.(remote.Checker)
		if !ok {
			t.Fatal("the sftp backend has no Check")
		}
		return c.Check(ctx)
	}
	if err := check(s.URL(), s.KnownHosts, s.Key); err != nil {
		t.Fatalf("a good remote: %v", err)
	}
	if ents, _ := os.ReadDir(s.Dir); len(ents) != 1 || ents[0].Name() != "file" {
		t.Fatalf("the check left %v", ents)
	}
	for _, c := range []struct {
		name, url, kh, kind, words string
	}{
		{"unknown host key", s.URL(), empty, remote.KindHostKey, "unknown host key"},
		{"missing directory", s.URL() + "/nope", s.KnownHosts, remote.KindNoDir, "nope"},
		{"a file", s.URL() + "/file", s.KnownHosts, remote.KindNoDir, "not a directory"},
		{"read-only", ro.URL(), ro.KnownHosts, remote.KindIO, "not writable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := s.Key
			if c.url == ro.URL() {
				key = ro.Key
			}
			err := check(c.url, c.kh, key)
			var re *remote.Error
			if !errors.As(err, &re) || re.Kind != c.kind || re.Transient || !strings.Contains(err.Error(), c.words) {
				t.Fatalf("want %s (%q), not retried: %#v", c.kind, c.words, err)
			}
			t.Logf("%v\nhint: %s", err, hint.Of(err))
			if hint.Of(err) == "" {
				t.Fatalf("no hint: %v", err)
			}
		})
	}
	if ents, _ := os.ReadDir(ro.Dir); len(ents) != 0 {
		t.Fatalf("the read-only check left %v", ents)
	}
}
