package systest

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/internal/testserver"
)

// TestRemoteRefusals: an unknown or changed host key, a wrong S3 secret
// and a missing bucket are found before the snapshot (preflight): the
// run fails with the remote and the reason named (exit 1) and makes no
// backup, so each try to fix the setup costs seconds, not a full copy;
// nothing is pruned. The next run with the fault fixed sends every
// backup the remote lacks.
func TestRemoteRefusals(t *testing.T) {
	e := newRemoteEnv(t)
	other := testserver.StartSSHD(t)
	dir := t.TempDir()
	emptyKH := filepath.Join(dir, "known_hosts_empty")
	os.WriteFile(emptyKH, nil, 0o600)
	changedKH := filepath.Join(dir, "known_hosts_changed")
	f := strings.Fields(other.HostPub)
	os.WriteFile(changedKH, []byte("[127.0.0.1]:"+strconv.Itoa(e.sshd.Port)+" "+f[0]+" "+f[1]+"\n"), 0o600)
	wrongSecret := append(append([]string{}, e.env...), "AWS_SECRET_ACCESS_KEY=not-the-secret-"+strconv.Itoa(os.Getpid()))

	cases := []struct {
		name    string
		url     string
		flags   []string
		env     []string
		want    []string // in stderr
		hint    string
		fixURL  string
		fixEnv  []string
		fixFlag []string
	}{
		{"unknown host key", e.sshd.URL(), []string{"--ssh-key", e.sshd.Key, "--known-hosts", emptyKH}, nil,
			[]string{"remote " + e.sshd.URL() + "/c0: host key: unknown host key"}, "add it: ssh-keyscan -t ed25519 -p " + strconv.Itoa(e.sshd.Port) + " 127.0.0.1 >> " + emptyKH,
			e.sshd.URL(), nil, e.flags},
		{"changed host key", e.sshd.URL(), []string{"--ssh-key", e.sshd.Key, "--known-hosts", changedKH}, nil,
			[]string{"host key: HOST KEY CHANGED", "this may be an attack"}, "ssh-keygen -R",
			e.sshd.URL(), nil, e.flags},
		{"wrong secret", e.s3URL, nil, wrongSecret,
			[]string{"remote " + e.s3URL + "/c2: authentication failed"}, "AWS_SECRET_ACCESS_KEY",
			e.s3URL, nil, nil},
		{"missing bucket", "s3://nosuchbucket/x", nil, nil,
			[]string{"remote s3://nosuchbucket/x/c3: missing bucket", `bucket "nosuchbucket" does not exist`}, "create it first",
			e.s3URL, nil, nil},
	}
	for i, c := range cases {
		// Each case its own remote directory: the names of backups taken
		// in the same second would collide (a conflict, tested below).
		sub := "/c" + strconv.Itoa(i)
		os.Mkdir(e.sshd.Dir+sub, 0o755)
		c.url += sub
		c.fixURL += sub
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			src := filepath.Join(d, "app.db")
			testdb.Create(t, src, testdb.Options{Rows: 200})
			bdir := filepath.Join(d, "backups")
			os.Mkdir(bdir, 0o755)
			// One backup before, which --keep 1 would prune.
			e.run(t, nil, "--source", src, "--backup-dir", bdir).must(t)
			r := e.run(t, c.env, append([]string{"--source", src, "--backup-dir", bdir, "--keep", "1", "--remote", c.url}, c.flags...)...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", r.code, r.out, r.err)
			}
			for _, w := range c.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if !strings.Contains(r.err, c.hint) {
				t.Errorf("stderr lacks the hint %q:\n%s", c.hint, r.err)
			}
			for _, s := range []string{e.s3.Secret, "not-the-secret"} {
				if strings.Contains(r.out+r.err, s) {
					t.Fatalf("a secret is in the output:\n%s%s", r.out, r.err)
				}
			}
			if n := sha256sumCheck(t, bdir); len(n) != 1 {
				t.Fatalf("local backups after the refusal: %v (no new backup, none pruned)", n)
			}
			if r.out != "" || len(tempsIn(t, bdir)) != 0 {
				t.Fatalf("the refused run took a backup or left a temp file:\n%s%v", r.out, tempsIn(t, bdir))
			}
			// Fixed: both backups go, then --keep 1 prunes here and there.
			env := c.fixEnv
			fix := parseBackup(t, e.run(t, env, append([]string{"--source", src, "--backup-dir", bdir, "--keep", "1", "--remote", c.fixURL, "--json"}, c.fixFlag...)...).must(t).out)
			if len(fix.Remotes) != 1 || len(fix.Remotes[0].Uploaded) != 2 {
				t.Fatalf("the next run sent %+v, want both backups", fix.Remotes)
			}
			if n := sha256sumCheck(t, bdir); len(n) != 1 {
				t.Fatalf("local after the fixed run with --keep 1: %v", n)
			}
		})
	}
}

// uploading waits until a file whose path contains marker, at least
// min bytes, appears under dir while cmd runs.
func uploading(t *testing.T, dir, marker string, min int64, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		found := false
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.Contains(p, marker) {
				if fi, err := d.Info(); err == nil && fi.Size() >= min {
					found = true
					return filepath.SkipAll
				}
			}
			return nil
		})
		if found {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before the upload could be interrupted", err)
		default:
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("no upload under way after 60 s")
}

// bigDB is a ~120 MB database whose upload takes long enough to be
// interrupted on loopback.
func bigDB(t *testing.T, dir string, mb int) string {
	src := filepath.Join(dir, "big.db")
	testdb.Create(t, src, testdb.Options{Rows: mb * 128, BlobSize: 8000})
	return src
}

func startRun(t *testing.T, e *remoteEnv, args ...string) (*exec.Cmd, <-chan error, *strings.Builder) {
	cmd := exec.Command("sqlite-backup", args...)
	cmd.Env = e.env
	var se strings.Builder
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done, &se
}

func incompleteUploads(t *testing.T, s3 *testserver.S3) int {
	n := 0
	for u := range s3.Client(t).ListIncompleteUploads(context.Background(), "backups", "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		n++
	}
	return n
}

// TestRemoteServerKilledMidUpload kills each server with SIGKILL while
// a backup is being uploaded: the run fails naming the remote, nothing
// is under the backup's final name there, the local backup is whole;
// with the server back, the next run uploads the missed backup and
// clears what the interrupted upload left.
func TestRemoteServerKilledMidUpload(t *testing.T) {
	e := newRemoteEnv(t)
	d := t.TempDir()
	src := bigDB(t, d, 120)
	for _, c := range []struct {
		name, url, marker, onDisk string
		kill, start               func()
	}{
		{"sftp", e.sshd.URL(), "sqlite-backup-tmp", e.sshd.Dir, e.sshd.Kill, func() { e.sshd.Start(t) }},
		{"s3", e.s3URL, ".sgwtmp", filepath.Join(e.s3.Dir, "backups"), e.s3.Kill, func() { e.s3.Start(t) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			bdir := t.TempDir()
			_, done, se := startRun(t, e, append([]string{"--source", src, "--backup-dir", bdir, "--remote", c.url}, e.flags...)...)
			uploading(t, c.onDisk, c.marker, 4<<20, done)
			c.kill()
			err := <-done
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("run with the server killed: %v\n%s", err, se.String())
			}
			if !strings.Contains(se.String(), "remote "+c.url+": ") {
				t.Fatalf("the remote is not named:\n%s", se.String())
			}
			names := sha256sumCheck(t, bdir)
			if len(names) != 1 {
				t.Fatalf("local backups: %v", names)
			}
			remoteDir := e.sshd.Dir
			if c.name == "s3" {
				remoteDir = e.s3Dir
			}
			if _, err := os.Stat(filepath.Join(remoteDir, names[0])); err == nil {
				t.Fatalf("%s is under its final name on the remote after the kill", names[0])
			}
			c.start()
			r := parseBackup(t, e.run(t, nil, append([]string{"--source", src, "--backup-dir", bdir, "--remote", c.url, "--json"}, e.flags...)...).must(t).out)
			if len(r.Remotes[0].Uploaded) != 2 {
				t.Fatalf("next run uploaded %v, want the missed and the new backup", r.Remotes[0].Uploaded)
			}
			if got := sha256sumCheck(t, remoteDir); len(got) != 2 {
				t.Fatalf("remote holds %v", got)
			}
			noTempFiles(t, e.sshd.Dir)
			if c.name == "s3" {
				if n := incompleteUploads(t, e.s3); n != 0 {
					t.Fatalf("%d incomplete multipart uploads left", n)
				}
			}
		})
	}
}

// TestRemoteInterrupted: SIGINT or SIGTERM mid-upload exits 130/143,
// leaves nothing under a final name and no temp file or multipart
// upload behind; the local backup stays.
func TestRemoteInterrupted(t *testing.T) {
	e := newRemoteEnv(t)
	d := t.TempDir()
	src := bigDB(t, d, 120)
	for _, c := range []struct {
		name, url, marker, onDisk, remoteDir string
		sig                                  syscall.Signal
		code                                 int
	}{
		{"sftp", e.sshd.URL(), "sqlite-backup-tmp", e.sshd.Dir, e.sshd.Dir, syscall.SIGINT, 130},
		{"s3", e.s3URL, ".sgwtmp", filepath.Join(e.s3.Dir, "backups"), e.s3Dir, syscall.SIGTERM, 143},
	} {
		t.Run(c.name, func(t *testing.T) {
			bdir := t.TempDir()
			cmd, done, se := startRun(t, e, append([]string{"--source", src, "--backup-dir", bdir, "--remote", c.url}, e.flags...)...)
			uploading(t, c.onDisk, c.marker, 4<<20, done)
			cmd.Process.Signal(c.sig)
			err := <-done
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != c.code {
				t.Fatalf("interrupted run: %v, want exit %d\n%s", err, c.code, se.String())
			}
			names := sha256sumCheck(t, bdir)
			if len(names) != 1 {
				t.Fatalf("local backups: %v", names)
			}
			if _, err := os.Stat(filepath.Join(c.remoteDir, names[0])); err == nil {
				t.Fatalf("%s is under its final name after the interruption", names[0])
			}
			noTempFiles(t, e.sshd.Dir)
			if c.name == "s3" {
				if n := incompleteUploads(t, e.s3); n != 0 {
					t.Fatalf("%d incomplete multipart uploads left", n)
				}
			}
		})
	}
}

// TestRemoteBoundedMemory uploads a large backup to both remotes in one
// run and samples the process's anonymous memory (RssAnon) throughout:
// it must stay at most 64 MB. 200 MB by default; STRESS=full makes it
// 1 GB.
func TestRemoteBoundedMemory(t *testing.T) {
	mb := 200
	if os.Getenv("STRESS") == "full" {
		mb = 1024
	}
	e := newRemoteEnv(t)
	d := t.TempDir()
	src := bigDB(t, d, mb)
	bdir := t.TempDir()
	cmd, done, se := startRun(t, e, append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL}, e.flags...)...)
	var peak int64
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v\n%s", err, se.String())
			}
			running = false
		case <-time.After(5 * time.Millisecond):
			if kb := rssAnon(cmd.Process.Pid); kb > peak {
				peak = kb
			}
		}
	}
	t.Logf("%d MB backup to sftp and s3: peak RssAnon %.1f MB\n%s", mb, float64(peak)/1024, se.String())
	if peak == 0 {
		t.Fatal("no memory sample taken")
	}
	if peak > 64*1024 {
		t.Fatalf("peak anonymous memory %.1f MB > 64 MB", float64(peak)/1024)
	}
	for _, dir := range []string{e.sshd.Dir, e.s3Dir} {
		if n := sha256sumCheck(t, dir); len(n) != 1 {
			t.Fatalf("%s: %v", dir, n)
		}
	}
}

// rssAnon reads RssAnon (kB) from /proc/<pid>/status; 0 once it is gone.
func rssAnon(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// TestRemoteNameConflict: two databases with the same file name sending
// to one place must not overwrite each other's backups, nor count one's
// backup as the other's: the second is refused before its snapshot
// (the remote's manifests name another owner), naming the conflict.
func TestRemoteNameConflict(t *testing.T) {
	e := newRemoteEnv(t)
	d := t.TempDir()
	src1, src2 := filepath.Join(d, "a", "app.db"), filepath.Join(d, "b", "app.db")
	b1, b2 := filepath.Join(d, "b1"), filepath.Join(d, "b2")
	for _, p := range []string{filepath.Dir(src1), filepath.Dir(src2), b1, b2} {
		os.MkdirAll(p, 0o755)
	}
	testdb.Create(t, src1, testdb.Options{Rows: 100})
	testdb.Create(t, src2, testdb.Options{Rows: 200})
	first := parseBackup(t, e.run(t, nil, "--source", src1, "--backup-dir", b1, "--remote", e.s3URL, "--json").must(t).out)
	name := filepath.Base(first.Path)
	// The other database's backup, under the very same name.
	other := parseBackup(t, e.run(t, nil, "--source", src2, "--backup-dir", b2, "--json").must(t).out)
	for _, s := range []string{"", ".json"} {
		if err := os.Rename(other.Path+s, filepath.Join(b2, name+s)); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(other.Path + ".sha256")
	os.WriteFile(filepath.Join(b2, name+".sha256"), []byte(other.SHA256+"  "+name+"\n"), 0o644)
	r := e.run(t, nil, "--source", src2, "--backup-dir", b2, "--remote", e.s3URL)
	if r.code != 1 || !strings.Contains(r.err, "name conflict") || !strings.Contains(r.err, "hint: give each database and backup directory its own remote directory or prefix") {
		t.Fatalf("exit %d\n%s%s", r.code, r.out, r.err)
	}
	if n := sha256sumCheck(t, b2); len(n) != 1 {
		t.Fatalf("the refused run made a backup: %v", n)
	}
	got, _ := os.ReadFile(filepath.Join(e.s3Dir, name))
	want, _ := os.ReadFile(first.Path)
	if !bytes.Equal(got, want) {
		t.Fatal("the first database's backup on the remote was overwritten")
	}
	sha256sumCheck(t, e.s3Dir)
}
