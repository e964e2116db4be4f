package sftp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
	"sqlite-backup/remote/sftp"
)

// TestSlowServerHash: an account whose commands start slowly (here a
// ForceCommand that sleeps before every command but sftp, as a slow
// ~/.bashrc does for internal-sftp accounts) no longer holds an upload
// until its shell is up: past the deadline the upload is read back and
// still checked, the phases say so, and the next upload on the
// connection does not wait for the server again.
func TestSlowServerHash(t *testing.T) {
	defer sftp.SetHashFloor(500 * time.Millisecond)()
	ctx := context.Background()
	sftpServer := "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(sftpServer); err != nil {
		t.Skipf("%s: %v", sftpServer, err)
	}
	slow := filepath.Join(t.TempDir(), "slow-shell")
	script := "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\ninternal-sftp) exec " + sftpServer + " ;;\nesac\nsleep 600\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartSSHD(t, "ForceCommand "+slow)
	r, err := remote.Open(ctx, s.URL(), remote.Options{SSHKey: s.Key, KnownHosts: s.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, want := range []struct {
		check  string
		phases []string
	}{
		{"read back (server hash too slow)", []string{remote.PhaseServerHash, remote.PhaseReadBack}},
		{"read back", []string{remote.PhaseReadBack}},
	} {
		data := make([]byte, 3<<20)
		rand.Read(data)
		name := "app.db.2026120" + string(rune('1'+i)) + "_020000"
		var phases []string
		t0 := time.Now()
		err := r.Put(ctx, name, remote.Source{R: bytes.NewReader(data), Size: int64(len(data)), SHA256: sum(data), Phase: func(p string) { phases = append(phases, p) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("upload %d: %v, %v", i, time.Since(t0), phases)
		if got := r.(interface{ LastCheck() string }).LastCheck(); got != want.check {
			t.Fatalf("upload %d checked by %q, want %q", i, got, want.check)
		}
		if !slices.Equal(phases, want.phases) {
			t.Fatalf("upload %d phases %v, want %v", i, phases, want.phases)
		}
		if got, _ := os.ReadFile(filepath.Join(s.Dir, name)); !bytes.Equal(got, data) {
			t.Fatalf("upload %d: the server's copy differs", i)
		}
	}
	// Still checked: a wrong sum is refused on the read-back path too.
	data := make([]byte, 3<<20)
	err = r.Put(ctx, "wrong", remote.Source{R: bytes.NewReader(data), Size: int64(len(data)), SHA256: sum([]byte("other"))})
	var re *remote.Error
	if !errors.As(err, &re) || re.Kind != remote.KindMismatch {
		t.Fatalf("wrong sum: %v", err)
	}
}
