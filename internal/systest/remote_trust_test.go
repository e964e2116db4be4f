package systest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/internal/testserver"
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

// putRemote puts name with data on both servers of e, as anyone with
// write access to them could: a file in the SFTP directory, an object
// through the S3 API (another client than the tool's).
func putRemote(t *testing.T, e *remoteEnv, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.sshd.Dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.s3.Client(t).PutObject(ctx, "backups", "host1/"+name, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %q: %v", name, err)
	}
}

// TestRemoteNamesShownNotObeyed: names in a remote listing are the
// server's. One with terminal escapes, a bidi override and a tab is
// listed escaped by list --remote, and cannot break the table. (A name
// with a newline is not a backup name: it is never listed.)
func TestRemoteNamesShownNotObeyed(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	cli3(t, db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	data, _ := os.ReadFile(db)
	evil := "\x1b]0;pwned\x07\x1b[2J\u202e\x7f\u009bevil\tx.db.20260101_120000"
	sum := sha256.Sum256(data)
	putRemote(t, e, evil, data)
	putRemote(t, e, evil+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+evil+"\n"))
	putRemote(t, e, evil+".json", []byte("{}"))
	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		for _, args := range [][]string{{"list", "--remote", url}, {"list", "--remote", url, "--json"}} {
			r := e.run(t, nil, append(args, e.flags...)...)
			out := r.out + r.err
			if len(args) == 4 && !json.Valid([]byte(r.out)) {
				t.Errorf("%q: --json output is not JSON:\n%s", args, r.out)
			}
			for _, c := range out {
				if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u202e' {
					t.Errorf("%q: exit %d, control character %U printed raw:\n%s", args, r.code, c, out)
					break
				}
			}
			if !strings.Contains(out, "evil") {
				t.Errorf("%q: exit %d, the backup is not listed:\n%s", args, r.code, out)
			}
			if len(args) == 3 && !strings.Contains(out, `evil\tx.db`) {
				t.Errorf("%q: the tab in the name is not shown escaped:\n%s", args, out)
			}
		}
	}
}

// TestRemoteForgeryPasses documents a limit, not a defect: a .sha256
// sidecar detects damage, not forgery. Whoever can write to a remote can
// put another database there under a backup's name with a .sha256 (and
// a .json) that match it, and verify, verify --deep and restore accept
// it. With encryption too: age proves who can read a backup, not who
// wrote it, and a recipient's key is public, so a forgery encrypted to
// it with the independent age CLI opens with the private key and
// passes. docs/SECURITY.md says so and what does authenticate.
func TestRemoteForgeryPasses(t *testing.T) {
	ageBin := testserver.Need(t, "age")
	e := newRemoteEnv(t)
	dir := t.TempDir()
	local := remoteBackup(t, e, dir)
	name := filepath.Base(local)
	forged := filepath.Join(dir, "forged.db")
	cli3(t, forged, "CREATE TABLE t(x); INSERT INTO t VALUES('forged');")
	forge := func(name string, data []byte) {
		sum := sha256.Sum256(data)
		putRemote(t, e, name, data)
		putRemote(t, e, name+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+name+"\n"))
		putRemote(t, e, name+".json", []byte("{}"))
	}
	data, _ := os.ReadFile(forged)
	forge(name, data)

	// The same with age: the forger needs only the public key.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	os.WriteFile(key, []byte(id.String()+"\n"), 0o600)
	encName := name + "-2.age"
	encFile := filepath.Join(dir, "forged.age")
	if out, err := exec.Command(ageBin, "-r", id.Recipient().String(), "-o", encFile, forged).CombinedOutput(); err != nil {
		t.Fatalf("age -r: %v\n%s", err, out)
	}
	enc, _ := os.ReadFile(encFile)
	forge(encName, enc)

	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		for _, c := range []struct {
			obj  string
			args []string
		}{{url + "/" + name, nil}, {url + "/" + encName, []string{"-i", key}}} {
			v := e.run(t, nil, append(append([]string{"verify", c.obj}, c.args...), e.flags...)...)
			if v.code != 0 || !strings.Contains(v.out, ": ok") {
				t.Errorf("verify %s: exit %d; the limit moved (a forgery no longer passes): update docs/SECURITY.md\n%s%s", c.obj, v.code, v.out, v.err)
			}
			to := filepath.Join(t.TempDir(), "restored.db")
			e.run(t, nil, append(append([]string{"restore", c.obj, "--to", to}, c.args...), e.flags...)...).must(t)
			if got := cli3(t, to, "SELECT x FROM t;"); got != "forged\n" {
				t.Errorf("restore %s: %q", c.obj, got)
			}
		}
	}
}
