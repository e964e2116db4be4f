package sftp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestUploadsPrivate: every file an upload leaves on the server, and
// its temp file from before the first byte is written, is 0600 on the
// server's disk, inside a 0700 directory while it is a temp file; even
// with sshd under umask 0, where a plain create is 0666.
func TestUploadsPrivate(t *testing.T) {
	ctx := context.Background()
	old := syscall.Umask(0)
	s := testserver.StartSSHD(t)
	syscall.Umask(old)
	r, err := remote.Open(ctx, s.URL(), remote.Options{SSHKey: s.Key, KnownHosts: s.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, n := range []int{100, 3 << 20} { // a sidecar; a backup (hashed by the server)
		data := make([]byte, n)
		rand.Read(data)
		name := "app.db.20261207_020000" + strings.Repeat(".json", n%2)
		seen := false
		progress := func(int64) {
			if seen {
				return
			}
			seen = true
			tmps, _ := filepath.Glob(filepath.Join(s.Dir, ".*sqlite-backup-tmp-*"))
			if len(tmps) != 1 {
				t.Errorf("temp dirs during the upload: %v", tmps)
				return
			}
			if m := mode(tmps[0]); m != "drwx------" {
				t.Errorf("temp dir %s: %s, want a 0700 directory", tmps[0], m)
			}
			f := filepath.Join(tmps[0], name)
			if m := mode(f); m != "-rw-------" {
				t.Errorf("temp file %s before its bytes: %s, want 0600", f, m)
			}
		}
		if err := r.Put(ctx, name, remote.Source{R: bytes.NewReader(data), Size: int64(n), SHA256: sum(data), Progress: progress}); err != nil {
			t.Fatal(err)
		}
		if !seen {
			t.Fatal("progress never called")
		}
		if m := mode(filepath.Join(s.Dir, name)); m != "-rw-------" {
			t.Fatalf("%s on the server: %s, want 0600", name, m)
		}
		if got, _ := os.ReadFile(filepath.Join(s.Dir, name)); !bytes.Equal(got, data) {
			t.Fatal("server's copy differs")
		}
		ents, _ := os.ReadDir(s.Dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), "tmp") {
				t.Fatalf("left behind: %s", e.Name())
			}
		}
	}
}

func mode(p string) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return err.Error()
	}
	return fi.Mode().String()
}

// TestCleanupTempDirs: Cleanup removes an interrupted upload's temp
// directory with its file, and an older version's temp file, for the
// names stale accepts, and nothing else.
func TestCleanupTempDirs(t *testing.T) {
	ctx := context.Background()
	s := testserver.StartSSHD(t)
	mk := func(p string, dir bool) {
		if dir {
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mine := ".app.db.20261207_020000.sqlite-backup-tmp-0123456789abcdef"
	mk(filepath.Join(s.Dir, mine), true)
	mk(filepath.Join(s.Dir, mine, "app.db.20261207_020000"), false)
	empty := ".app.db.20261207_030000.sha256.sqlite-backup-tmp-00000000000000ff"
	mk(filepath.Join(s.Dir, empty), true)
	oldFile := ".app.db.20261206_020000.sqlite-backup-tmp-fedcba9876543210"
	mk(filepath.Join(s.Dir, oldFile), false)
	theirs := ".other.db.20261207_020000.sqlite-backup-tmp-0123456789abcdef"
	mk(filepath.Join(s.Dir, theirs), true)
	mk(filepath.Join(s.Dir, theirs, "other.db.20261207_020000"), false)
	r, err := remote.Open(ctx, s.URL(), remote.Options{SSHKey: s.Key, KnownHosts: s.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Cleanup(ctx, func(name string, _ time.Time) bool { return strings.HasPrefix(name, "app.db.") })
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if p != s.Dir {
			left = append(left, strings.TrimPrefix(p, s.Dir+"/"))
		}
		return nil
	})
	if strings.Join(left, " ") != theirs+" "+theirs+"/other.db.20261207_020000" {
		t.Fatalf("left: %v", left)
	}
}
