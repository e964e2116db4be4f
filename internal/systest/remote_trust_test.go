package systest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/testdb"
)

// remoteBackup makes one backup of a fresh database and sends it to the
// real sshd and versitygw of e; it returns the backup's local path.
func remoteBackup(t *testing.T, e *remoteEnv, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 500, BlobSize: 200})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o700)
	args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL, "--json"}, e.flags...)
	b := parseBackup(t, e.run(t, nil, args...).must(t).out)
	for _, r := range b.Remotes {
		if r.Error != "" || len(r.Uploaded) != 1 {
			t.Fatalf("remote %+v", r)
		}
	}
	return b.Path
}

// TestRemoteDamageIsFailed: a backup with a flipped byte on the server
// (real sshd, real versitygw) is a failed verification, exit 3 and
// FAILED, as the same damage to a local file is; --json says ok false
// and sha256 mismatch; restore from it replaces nothing and exits 3.
func TestRemoteDamageIsFailed(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	local := remoteBackup(t, e, dir)
	name := filepath.Base(local)

	// The reference: the same damage to the local file.
	damaged := filepath.Join(dir, name)
	copyFile(t, local, damaged, 0o600)
	copyFile(t, local+".sha256", damaged+".sha256", 0o600)
	flipByte(t, damaged, 5000)
	if v := e.run(t, nil, "verify", damaged); v.code != 3 || !strings.Contains(v.out, "FAILED") {
		t.Fatalf("local reference: verify of a damaged file: exit %d\n%s%s", v.code, v.out, v.err)
	}

	for _, s := range []struct{ url, dir string }{{e.sshd.URL(), e.sshd.Dir}, {e.s3URL, e.s3Dir}} {
		flipByte(t, filepath.Join(s.dir, name), 5000)
		obj := s.url + "/" + name
		v := e.run(t, nil, append([]string{"verify", obj}, e.flags...)...)
		if v.code != 3 || !strings.Contains(v.out, obj+": FAILED: sha256 mismatch") {
			t.Errorf("verify %s with a flipped byte on the server: exit %d, want 3 and FAILED\nstdout: %s\nstderr: %s", obj, v.code, v.out, v.err)
		}
		j := e.run(t, nil, append([]string{"verify", obj, "--json"}, e.flags...)...)
		var res struct {
			OK     bool   `json:"ok"`
			SHA256 string `json:"sha256"`
		}
		oneResult(t, j.out, &res)
		if j.code != 3 || res.OK || res.SHA256 != "mismatch" {
			t.Errorf("verify --json %s: exit %d, result %+v, want exit 3, ok false, sha256 mismatch\n%s", obj, j.code, res, j.out)
		}
		to := filepath.Join(t.TempDir(), "restored.db")
		r := e.run(t, nil, append([]string{"restore", obj, "--to", to}, e.flags...)...)
		if r.code != 3 || !strings.Contains(r.err, "failed verification; nothing was restored") {
			t.Errorf("restore %s: exit %d, want 3\n%s", obj, r.code, r.err)
		}
		if _, err := os.Stat(to); err == nil {
			t.Errorf("restore %s from a damaged copy created the target", obj)
		}
		if ents, _ := os.ReadDir(filepath.Dir(to)); len(ents) > 1 {
			t.Errorf("restore %s left files beside the target: %v", obj, ents)
		}
	}
}

