package systest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/internal/testserver"
)

// remoteEnv is one sshd and one versitygw with a bucket, and the
// environment and flags the tool needs for both.
type remoteEnv struct {
	sshd  *testserver.SSHD
	s3    *testserver.S3
	s3URL string
	s3Dir string // where versitygw keeps the prefix's objects
	env   []string
	flags []string
}

func newRemoteEnv(t *testing.T) *remoteEnv {
	t.Helper()
	e := &remoteEnv{sshd: testserver.StartSSHD(t), s3: testserver.StartS3(t)}
	e.s3.MakeBucket(t, "backups")
	e.s3URL = "s3://backups/host1"
	e.s3Dir = filepath.Join(e.s3.Dir, "backups", "host1")
	e.env = append(os.Environ(), e.s3.Env()...)
	// Short waits between retries: the bound is what is tested, not the wait.
	e.env = append(e.env, "SQLITE_BACKUP_REMOTE_BACKOFF=50ms", "HOME="+t.TempDir(), "SSH_AUTH_SOCK=")
	e.flags = []string{"--ssh-key", e.sshd.Key, "--known-hosts", e.sshd.KnownHosts}
	return e
}

type runResult struct {
	out, err string
	code     int
}

func (e *remoteEnv) run(t *testing.T, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command("sqlite-backup", args...)
	if env == nil {
		env = e.env
	}
	cmd.Env = env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{so.String(), se.String(), code}
}

func (r runResult) must(t *testing.T) runResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
	return r
}

// sha256sumCheck runs the independent sha256sum -c on every .sha256
// sidecar in dir and returns the names of the backups it checked.
func sha256sumCheck(t *testing.T, dir string) []string {
	t.Helper()
	sides, _ := filepath.Glob(filepath.Join(dir, "*.sha256"))
	var names []string
	for _, s := range sides {
		cmd := exec.Command("sha256sum", "--strict", "-c", "--", filepath.Base(s))
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum -c %s in %s: %v\n%s", filepath.Base(s), dir, err, out)
		}
		names = append(names, strings.TrimSuffix(filepath.Base(s), ".sha256"))
	}
	return names
}

// noTempFiles fails if an upload left anything but backups and sidecars.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

type remoteBackupJSON struct {
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Remotes []struct {
		Remote   string   `json:"remote"`
		Uploaded []string `json:"uploaded"`
		Present  int      `json:"already_present"`
		Removed  []string `json:"removed"`
		Error    string   `json:"error"`
		Pending  []string `json:"pending"`
		HeldBack []string `json:"held_back"`
	} `json:"remotes"`
	FullReason string `json:"full_reason"`
	Damaged    []struct {
		Path string `json:"path"`
	} `json:"damaged"`
}

func parseBackup(t *testing.T, out string) remoteBackupJSON {
	t.Helper()
	var b remoteBackupJSON
	oneResult(t, out, &b)
	return b
}

// TestRemoteBothInOneRun sends one backup to an SFTP and an S3 remote in
// one run, then lists, verifies and restores it from each; the bytes on
// each server are checked by sha256sum, the restored databases by the C
// sqlite3 CLI.
func TestRemoteBothInOneRun(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 3000, BlobSize: 1000})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL, "--json"}, e.flags...)
	b := parseBackup(t, e.run(t, nil, args...).must(t).out)
	name := filepath.Base(b.Path)
	if len(b.Remotes) != 2 {
		t.Fatalf("remotes in --json: %+v", b.Remotes)
	}
	for _, r := range b.Remotes {
		if r.Error != "" || len(r.Uploaded) != 1 || r.Uploaded[0] != name {
			t.Fatalf("remote %+v", r)
		}
	}
	local, _ := os.ReadFile(b.Path)
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		got, err := os.ReadFile(filepath.Join(d, name))
		if err != nil || !bytes.Equal(got, local) {
			t.Fatalf("%s: the server's copy differs from the local backup (%v)", d, err)
		}
		if n := sha256sumCheck(t, d); len(n) != 1 || n[0] != name {
			t.Fatalf("%s: sidecars %v", d, n)
		}
		if _, err := os.Stat(filepath.Join(d, name+".json")); err != nil {
			t.Fatalf("no manifest on the remote: %v", err)
		}
		noTempFiles(t, d)
	}
	// A second run, the remotes from the config file, sends only the
	// new backup; the metrics file has a series per remote.
	cfg := filepath.Join(dir, "sqlite-backup.conf")
	os.WriteFile(cfg, []byte("remote = [\""+e.sshd.URL()+"\", \""+e.s3URL+"\"]\nssh-key = \""+e.sshd.Key+"\"\nknown-hosts = \""+e.sshd.KnownHosts+"\"\n"), 0o600)
	prom := filepath.Join(dir, "m.prom")
	b2 := parseBackup(t, e.run(t, nil, "--config", cfg, "--source", src, "--backup-dir", bdir, "--json", "--metrics-file", prom).must(t).out)
	if len(b2.Remotes) != 2 {
		t.Fatalf("config remote = [...]: %+v", b2.Remotes)
	}
	for _, r := range b2.Remotes {
		if len(r.Uploaded) != 1 || r.Present != 1 {
			t.Fatalf("second run: %+v", r)
		}
	}
	m, _ := os.ReadFile(prom)
	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		if !strings.Contains(string(m), `sqlite_backup_remote_last_run_success{database="`+src+`",remote="`+url+`"} 1`) {
			t.Fatalf("metrics lack %s:\n%s", url, m)
		}
	}
	if strings.Contains(string(m), e.s3.Secret) {
		t.Fatal("the secret is in the metrics file")
	}
	// SQLITE_BACKUP_REMOTE names a remote too.
	b3 := parseBackup(t, e.run(t, append(append([]string{}, e.env...), "SQLITE_BACKUP_REMOTE="+e.s3URL), "--source", src, "--backup-dir", bdir, "--json").must(t).out)
	if len(b3.Remotes) != 1 || b3.Remotes[0].Remote != e.s3URL || len(b3.Remotes[0].Uploaded) != 1 {
		t.Fatalf("SQLITE_BACKUP_REMOTE: %+v", b3.Remotes)
	}

	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		l := e.run(t, nil, append([]string{"list", "--remote", url}, e.flags...)...).must(t)
		if !strings.Contains(l.out, name) || !strings.Contains(l.out, b.SHA256[:12]) || strings.Contains(l.out, "INCOMPLETE") {
			t.Fatalf("list --remote %s:\n%s", url, l.out)
		}
		// A terminal's 100 columns hold every row (the heading is the
		// URL, as long as it is); --json keeps the rest.
		for _, line := range strings.Split(l.out, "\n") {
			if n := utf8.RuneCountInString(line); n > 100 && !strings.HasPrefix(line, url+":") {
				t.Errorf("list --remote %s: a line of %d columns:\n%s", url, n, line)
			}
		}
		lj := e.run(t, nil, append([]string{"list", "--remote", url, "--json"}, e.flags...)...).must(t)
		if !strings.Contains(lj.out, `"sha256":"`+b.SHA256+`"`) || !strings.Contains(lj.out, `"remote":"`+url+`"`) {
			t.Fatalf("list --remote %s --json lacks the whole SHA-256 or the remote:\n%s", url, lj.out)
		}
		v := e.run(t, nil, append([]string{"verify", url + "/" + name}, e.flags...)...).must(t)
		if !strings.Contains(v.out, ": ok") || !strings.Contains(v.out, url+"/"+name) {
			t.Fatalf("verify %s/%s:\n%s", url, name, v.out)
		}
		to := filepath.Join(t.TempDir(), "restored.db")
		e.run(t, nil, append([]string{"restore", url + "/" + name, "--to", to}, e.flags...)...).must(t)
		out, err := exec.Command("sqlite3", to, "PRAGMA integrity_check; SELECT count(*) FROM t;").CombinedOutput()
		if err != nil || string(out) != "ok\n3000\n" {
			t.Fatalf("restored from %s: %v %q", url, err, out)
		}
		ents, _ := os.ReadDir(filepath.Dir(to))
		if len(ents) != 2 { // restored.db and restore's lock file
			t.Fatalf("restore left files beside the target: %v", ents)
		}
		// Over an existing database, whose mode it keeps: the download
		// itself is renamed into place, whole and checked.
		if out, err := exec.Command("sqlite3", to, "DELETE FROM t WHERE id > 10;").CombinedOutput(); err != nil {
			t.Fatalf("change restored db: %v %s", err, out)
		}
		os.Chmod(to, 0o640)
		e.run(t, nil, append([]string{"restore", url + "/" + name, "--to", to, "--force"}, e.flags...)...).must(t)
		out, err = exec.Command("sqlite3", to, "PRAGMA integrity_check; SELECT count(*) FROM t;").CombinedOutput()
		if err != nil || string(out) != "ok\n3000\n" {
			t.Fatalf("restored again from %s: %v %q", url, err, out)
		}
		if fi, _ := os.Stat(to); fi.Mode().Perm() != 0o640 {
			t.Errorf("restored again from %s: mode %v, want the old file's 0640", url, fi.Mode().Perm())
		}
		ents, _ = os.ReadDir(filepath.Dir(to))
		if len(ents) != 3 || !strings.Contains(ents[2].Name()+ents[1].Name()+ents[0].Name(), ".pre-restore.") {
			t.Fatalf("restore over a database left: %v (want it, the lock, the safety copy)", ents)
		}
	}
	// A damaged copy on the server is caught by verify, not passed.
	p := filepath.Join(e.s3Dir, name)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff
	os.WriteFile(p, data, 0o644)
	if v := e.run(t, nil, "verify", e.s3URL+"/"+name); v.code == 0 {
		t.Fatalf("verify of a damaged remote copy passed:\n%s", v.out)
	}
}

// TestRemoteRetention: --keep applies on each remote after its upload,
// only to this database's exact names; prune --remote works on its own.
func TestRemoteRetention(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 100})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	// Not ours: another database's backup and a look-alike name.
	for _, d := range []string{e.sshd.Dir} {
		os.WriteFile(filepath.Join(d, "other.db.20200101_000000"), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(d, "app.db.20200101_000000.bak"), []byte("x"), 0o644)
	}
	args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL, "--keep", "2"}, e.flags...)
	for range 3 {
		e.run(t, nil, args...).must(t)
	}
	newest := filepath.Base(parseBackup(t, e.run(t, nil, append(args, "--json")...).must(t).out).Path)
	localNames := sha256sumCheck(t, bdir)
	if len(localNames) != 2 {
		t.Fatalf("local backups: %v", localNames)
	}
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		names := sha256sumCheck(t, d)
		if strings.Join(names, " ") != strings.Join(localNames, " ") {
			t.Fatalf("%s holds %v, local %v", d, names, localNames)
		}
		ents, _ := os.ReadDir(d)
		want := 6
		if d == e.sshd.Dir {
			want = 8
		}
		if len(ents) != want {
			t.Fatalf("%s: %d files, want %d", d, len(ents), want)
		}
	}
	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		// prune --remote removes what this backup dir's runs sent.
		p := e.run(t, nil, append([]string{"prune", "--source", src, "--backup-dir", bdir, "--remote", url, "--keep", "1"}, e.flags...)...).must(t)
		if !strings.Contains(p.out, "kept 1") {
			t.Fatalf("prune --remote:\n%s", p.out)
		}
	}
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		if names := sha256sumCheck(t, d); len(names) != 1 || names[0] != newest {
			t.Fatalf("%s after prune --keep 1: %v (newest %s)", d, names, newest)
		}
	}
	for _, f := range []string{"other.db.20200101_000000", "app.db.20200101_000000.bak"} {
		if _, err := os.Stat(filepath.Join(e.sshd.Dir, f)); err != nil {
			t.Fatalf("pruning removed a file that is not this database's backup: %s", f)
		}
	}
	// The local backups are untouched by a remote prune.
	if n := sha256sumCheck(t, bdir); len(n) != 2 {
		t.Fatalf("local after prune --remote: %v", n)
	}
}

// TestRemoteS3PrivateCAAndProfile: an HTTPS endpoint signed by a private
// CA is trusted through AWS_CA_BUNDLE, refused without it (named, not
// retried); credentials come from AWS_PROFILE in ~/.aws/credentials.
func TestRemoteS3PrivateCAAndProfile(t *testing.T) {
	s3 := testserver.StartS3TLS(t)
	s3.MakeBucket(t, "backups")
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
	creds := "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n[backup]\naws_access_key_id = " + s3.Access + "\naws_secret_access_key = " + s3.Secret + "\n"
	os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(creds), 0o600)
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			base = append(base, kv)
		}
	}
	base = append(base, "HOME="+home, "AWS_ENDPOINT_URL="+s3.Endpoint(), "AWS_PROFILE=backup", "SQLITE_BACKUP_REMOTE_BACKOFF=50ms")
	e := &remoteEnv{}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 100})
	bdir := filepath.Join(dir, "b")
	os.Mkdir(bdir, 0o755)

	// Refused before the snapshot: no backup is made.
	r := e.run(t, base, "--source", src, "--backup-dir", bdir, "--remote", "s3://backups/ca")
	if r.code != 1 || !strings.Contains(r.err, "TLS certificate not trusted") || !strings.Contains(r.err, "hint: for an endpoint with a private CA: AWS_CA_BUNDLE=") {
		t.Fatalf("without the CA: exit %d\n%s%s", r.code, r.out, r.err)
	}
	ok := e.run(t, append(base, "AWS_CA_BUNDLE="+s3.CAFile), "--source", src, "--backup-dir", bdir, "--remote", "s3://backups/ca", "--json").must(t)
	b := parseBackup(t, ok.out)
	if len(b.Remotes) != 1 || len(b.Remotes[0].Uploaded) != 1 {
		t.Fatalf("with AWS_CA_BUNDLE and AWS_PROFILE: %+v", b.Remotes)
	}
	if n := sha256sumCheck(t, filepath.Join(s3.Dir, "backups", "ca")); len(n) != 1 {
		t.Fatalf("on the server: %v", n)
	}
	// The default profile's wrong secret is refused as such.
	bad := e.run(t, append(base[:len(base)-2:len(base)-2], "AWS_CA_BUNDLE="+s3.CAFile, "SQLITE_BACKUP_REMOTE_BACKOFF=50ms"), "--source", src, "--backup-dir", bdir, "--remote", "s3://backups/ca")
	if bad.code != 1 || !strings.Contains(bad.err, "authentication failed") {
		t.Fatalf("default profile: exit %d\n%s", bad.code, bad.err)
	}
}
