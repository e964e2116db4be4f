package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestKilledFetchLeavesNothing: restore URL/NAME downloads beside the
// target, verify URL/NAME into its temp dir. Killed with SIGKILL during
// the download (real sshd and versitygw), each leaves the partial
// download; the next restore into that directory, or the next verify
// with that temp dir, removes it.
func TestKilledFetchLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILL scenario: skipped with -short")
	}
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := bigDB(t, dir, 12)
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o700)
	b := parseBackup(t, e.run(t, nil, "--source", src, "--backup-dir", bdir, "--remote", e.s3URL, "--json").must(t).out)
	name := filepath.Base(b.Path)
	// The SFTP remote is a directory: the same files put there directly
	// (what an upload is proven to leave; see TestRemoteBothInOneRun).
	for _, s := range []string{"", ".sha256", ".json"} {
		copyFile(t, b.Path+s, filepath.Join(e.sshd.Dir, name+s), 0o600)
	}
	downloading := func(d string) func() bool {
		return func() bool {
			ds, _ := filepath.Glob(filepath.Join(d, ".sqlite-backup-fetch-*", name))
			for _, p := range ds {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
					return true
				}
			}
			return false
		}
	}
	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		obj := url + "/" + name
		to := filepath.Join(t.TempDir(), "app.db")
		tmp := t.TempDir()
		for _, c := range []struct {
			args []string
			dir  string
		}{
			{append([]string{"restore", obj, "--to", to}, e.flags...), filepath.Dir(to)},
			{append([]string{"verify", obj, "--temp-dir", tmp}, e.flags...), tmp},
		} {
			killed := false
			for range 3 {
				cmd := exec.Command("sqlite-backup", c.args...)
				cmd.Env = e.env
				p := startProc(t, cmd)
				if p.until(downloading(c.dir)) {
					p.cmd.Process.Signal(syscall.SIGKILL)
					p.wait()
					killed = true
					break
				}
				os.Remove(to)
			}
			if !killed {
				t.Fatalf("%s: finished each time before the download was seen", c.args[0])
			}
			if left, _ := filepath.Glob(filepath.Join(c.dir, ".sqlite-backup-fetch-*")); len(left) == 0 {
				t.Fatalf("%s %s: the killed run left no download: the scenario did not happen", c.args[0], obj)
			}
			e.run(t, nil, c.args...).must(t)
			var extra []string
			for _, n := range listDir(t, c.dir) {
				if n != "app.db" && n != ".sqlite-backup.lock" {
					extra = append(extra, n)
				}
			}
			if len(extra) > 0 {
				t.Errorf("%s %s after a killed one: left %v", c.args[0], obj, extra)
			}
		}
	}
}
