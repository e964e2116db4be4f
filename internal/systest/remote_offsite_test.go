package systest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/internal/testserver"
)

// TestRemoteSidecarNames: databases whose file names hold spaces,
// quotes, UTF-8, a leading dash or a backslash go to both remotes run
// after run: the second run finds the first backup complete there (its
// .sha256 read as sha256sum -c reads it, not split on whitespace) and
// sends only the new one; the real sha256sum -c accepts every sidecar
// here and on each server; verify and restore of URL/NAME work.
func TestRemoteSidecarNames(t *testing.T) {
	e := newRemoteEnv(t)
	for i, db := range []string{"my app.db", `it's "quoted".db`, "überdatenbank-日本.db", "-leading-dash.db", `back\slash.db`} {
		t.Run(db, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, db)
			testdb.Create(t, src, testdb.Options{Rows: 300})
			bdir := filepath.Join(dir, "backups")
			os.Mkdir(bdir, 0o755)
			sub := "/names" + string(rune('0'+i))
			os.Mkdir(e.sshd.Dir+sub, 0o755)
			urls := []string{e.sshd.URL() + sub, e.s3URL + sub}
			args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", urls[0], "--remote", urls[1], "--json"}, e.flags...)
			first := parseBackup(t, e.run(t, nil, args...).must(t).out)
			second := parseBackup(t, e.run(t, nil, args...).must(t).out)
			for _, r := range second.Remotes {
				if r.Error != "" || len(r.Uploaded) != 1 || r.Present != 1 {
					t.Fatalf("second run: remote %+v (want the first backup found complete there)", r)
				}
			}
			if n := sha256sumCheck(t, bdir); len(n) != 2 {
				t.Fatalf("local sidecars checked: %v", n)
			}
			for _, d := range []string{e.sshd.Dir + sub, filepath.Join(e.s3Dir, sub)} {
				if n := sha256sumCheck(t, d); len(n) != 2 {
					t.Fatalf("%s: sidecars checked: %v", d, n)
				}
			}
			name := filepath.Base(first.Path)
			for _, url := range urls {
				obj := url + "/" + name
				// Its own temp dir: other runs on this machine clean theirs.
				v := e.run(t, nil, append([]string{"verify", obj, "--temp-dir", t.TempDir()}, e.flags...)...).must(t)
				if !strings.Contains(v.out, ": ok") {
					t.Fatalf("verify %s:\n%s", obj, v.out)
				}
				to := filepath.Join(t.TempDir(), "restored.db")
				e.run(t, nil, append([]string{"restore", obj, "--to", to}, e.flags...)...).must(t)
				if out, err := exec.Command("sqlite3", to, "PRAGMA integrity_check; SELECT count(*) FROM t;").CombinedOutput(); err != nil || string(out) != "ok\n300\n" {
					t.Fatalf("restored from %s: %v %q", obj, err, out)
				}
			}
		})
	}
}

// backupFull is the --json result of a backup with remotes, as far as
// these tests read it.
type backupFull struct {
	Path           string   `json:"path"`
	OK             bool     `json:"ok"`
	LocalOK        *bool    `json:"local_ok"`
	RemotesOK      *bool    `json:"remotes_ok"`
	KeptForRemotes []string `json:"kept_for_remotes"`
	PruneSkipped   string   `json:"remotes_prune_skipped"`
	Removed        []struct {
		Path string `json:"path"`
	} `json:"removed"`
	Damaged []struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"damaged"`
	Remotes []struct {
		Remote   string   `json:"remote"`
		Uploaded []string `json:"uploaded"`
		Present  int      `json:"already_present"`
		Skipped  []string `json:"skipped"`
		Damaged  []string `json:"damaged"`
		Pending  []string `json:"pending"`
		Removed  []string `json:"removed"`
		Pruned   bool     `json:"pruned"`
		Error    string   `json:"error"`
		Hint     string   `json:"hint"`
	} `json:"remotes"`
	Error string `json:"error"`
	Hint  string `json:"hint"`
}

func parseFull(t *testing.T, out string) backupFull {
	t.Helper()
	var b backupFull
	oneResult(t, out, &b)
	return b
}

// filesIn lists the regular files in dir (names).
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRemoteEncryptedSendsNoPlaintext: two backups without -r, then a
// run with -r and both remotes: only the new .age backup and its sealed
// manifest leave the machine; the plaintext backups stay here, named in
// the report (text and --json) with why. Every byte on both servers is
// read: no SQLite header, table name or row value, no clear manifest.
func TestRemoteEncryptedSendsNoPlaintext(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 500})
	const table, marker = "secret_customers", "PLAINTEXT-MARKER-0815"
	if out, err := exec.Command("sqlite3", src, "CREATE TABLE "+table+"(name TEXT); INSERT INTO "+table+" VALUES ('"+marker+"');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	for range 2 {
		e.run(t, nil, "--source", src, "--backup-dir", bdir).must(t)
	}
	plain := sha256sumCheck(t, bdir)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	os.WriteFile(key, []byte(id.String()+"\n"), 0o600)
	base := append([]string{"--source", src, "--backup-dir", bdir, "-r", id.Recipient().String(), "-i", key, "--remote", e.sshd.URL(), "--remote", e.s3URL}, e.flags...)
	b := parseFull(t, e.run(t, nil, append(base, "--json")...).must(t).out)
	name := filepath.Base(b.Path)
	for _, r := range b.Remotes {
		if r.Error != "" || len(r.Uploaded) != 1 || r.Uploaded[0] != name {
			t.Fatalf("remote %+v: want only %s sent", r, name)
		}
		for _, p := range plain {
			if !containsPrefix(r.Skipped, p+": not encrypted") {
				t.Fatalf("remote %s: %s not named as left behind: %v", r.Remote, p, r.Skipped)
			}
		}
	}
	// The text report says it once.
	txt := e.run(t, nil, base...).must(t)
	for _, p := range plain {
		if strings.Count(txt.out, "not sent off-site: "+p+": not encrypted") != 1 {
			t.Fatalf("text report does not name %s once as left behind:\n%s", p, txt.out)
		}
	}
	for _, root := range []string{e.sshd.Dir, e.s3.Dir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, clear := range []string{"SQLite format 3", table, marker, `"tables"`} {
				if strings.Contains(string(data), clear) {
					t.Errorf("%s holds %q in the clear", p, clear)
				}
			}
			return nil
		})
	}
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		for _, n := range filesIn(t, d) {
			if !strings.Contains(n, ".age") {
				t.Errorf("%s: %s is not an encrypted backup or its sidecar", d, n)
			}
		}
	}
}

func containsPrefix(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TestRemoteOwners: two backup directories of the same database (as two
// hosts with the same path would have) send to one place. The first
// owns it; the second is refused before its snapshot with an error that
// names both owners, and nothing of the first's is removed, whatever
// --keep the second gives. Cleanup touches only a run's own uploads:
// another owner's temp file (SFTP) and incomplete multipart upload (S3)
// of the same database file name, as an upload in flight leaves them,
// survive a run's cleanup; they are not provably stale.
func TestRemoteOwners(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 200})
	hostA, hostB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	urls := []string{e.sshd.URL() + "/shared", e.s3URL + "/shared"}
	os.Mkdir(e.sshd.Dir+"/shared", 0o755)
	remoteDirs := []string{e.sshd.Dir + "/shared", filepath.Join(e.s3Dir, "shared")}
	run := func(bdir string, keep string) runResult {
		return e.run(t, nil, append([]string{"--source", src, "--backup-dir", bdir, "--keep", keep, "--remote", urls[0], "--remote", urls[1]}, e.flags...)...)
	}
	run(hostA, "3").must(t)
	run(hostA, "3").must(t)
	heldA := sha256sumCheck(t, remoteDirs[0])
	// A name of its own for the second owner's backup: the same bytes
	// under the same name would count as present.
	time.Sleep(1100 * time.Millisecond)
	r := run(hostB, "1")
	if r.code != 1 || !strings.Contains(r.err, "name conflict") || !strings.Contains(r.err, hostA) || !strings.Contains(r.err, hostB) {
		t.Fatalf("second owner: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if !strings.Contains(r.err, "hint: give each database and backup directory its own remote directory or prefix") {
		t.Fatalf("no hint:\n%s", r.err)
	}
	if bs, _ := filepath.Glob(filepath.Join(hostB, "app.db.*")); len(bs) != 0 {
		t.Fatalf("the refused run made a backup: %v", bs)
	}
	for _, d := range remoteDirs {
		if got := sha256sumCheck(t, d); strings.Join(got, " ") != strings.Join(heldA, " ") {
			t.Fatalf("%s holds %v, want the first owner's %v untouched", d, got, heldA)
		}
	}

	// Uploads in flight of another owner, same database file name.
	const theirs = "app.db.20200101_000000"
	tmp := filepath.Join(e.sshd.Dir, "fresh", "."+theirs+".sqlite-backup-tmp-0123456789abcdef")
	os.MkdirAll(filepath.Dir(tmp), 0o755)
	os.WriteFile(tmp, []byte("half an upload"), 0o644)
	cl := e.s3.Client(t)
	up, err := minio.Core{Client: cl}.NewMultipartUpload(context.Background(), "backups", "host1/fresh/"+theirs, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fresh := []string{e.sshd.URL() + "/fresh", e.s3URL + "/fresh"}
	e.run(t, nil, append([]string{"--source", src, "--backup-dir", hostB, "--remote", fresh[0], "--remote", fresh[1]}, e.flags...)...).must(t)
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("another owner's upload in flight was removed (SFTP): %v", err)
	}
	found := false
	for u := range cl.ListIncompleteUploads(context.Background(), "backups", "host1/fresh/", true) {
		found = found || u.UploadID == up
	}
	if !found {
		t.Fatal("another owner's multipart upload in flight was aborted (S3)")
	}
}

// TestRemoteOffsiteLock: while another run holds the backup directory's
// off-site lock (it is sending), a run still takes its local backup but
// sends nothing and cleans up nothing: its cleanup could take that run's
// uploads for a dead run's. It says so and exits 1; the next run sends.
func TestRemoteOffsiteLock(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 200})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--json"}, e.flags...)
	first := parseFull(t, e.run(t, nil, args...).must(t).out)
	// An upload of the first backup in flight, as the holder would have.
	tmp := filepath.Join(e.sshd.Dir, "."+filepath.Base(first.Path)+".sqlite-backup-tmp-0123456789abcdef")
	os.WriteFile(tmp, []byte("in flight"), 0o644)
	f, err := os.OpenFile(filepath.Join(bdir, ".sqlite-backup-offsite.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, nil, args...)
	b := parseFull(t, r.out)
	if r.code != 1 || b.LocalOK == nil || !*b.LocalOK || !strings.Contains(r.err, "being sent off-site by another sqlite-backup run") {
		t.Fatalf("exit %d\n%s%s", r.code, r.out, r.err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the holder's upload in flight was removed: %v", err)
	}
	if n := sha256sumCheck(t, e.sshd.Dir); len(n) != 1 {
		t.Fatalf("sent while another run held the lock: %v", n)
	}
	f.Close()
	next := parseFull(t, e.run(t, nil, args...).must(t).out)
	if len(next.Remotes[0].Uploaded) != 2 {
		t.Fatalf("next run: %+v", next.Remotes)
	}
	noTempFiles(t, e.sshd.Dir)
}

// TestRemoteDamagedLocalBackup: a flipped byte in an older local backup
// does not block the remotes: it is checked before it is sent, skipped,
// named as damaged here (text, --json, metrics), and every other backup
// goes; the run does not blame the server or retry.
func TestRemoteDamagedLocalBackup(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	// Under 1 MiB: SFTP reads it back (a larger one is hashed by the
	// server, the same verdict, with a shell's start-up per upload).
	testdb.Create(t, src, testdb.Options{Rows: 3000})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	for range 3 {
		e.run(t, nil, "--source", src, "--backup-dir", bdir).must(t)
	}
	names := sha256sumCheck(t, bdir)
	bad := filepath.Join(bdir, names[1])
	data, _ := os.ReadFile(bad)
	data[len(data)/2] ^= 0x01
	os.WriteFile(bad, data, 0o600)
	prom := filepath.Join(dir, "m.prom")
	r := e.run(t, nil, append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL, "--metrics-file", prom, "--json"}, e.flags...)...)
	b := parseFull(t, r.out)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.out, r.err)
	}
	if len(b.Damaged) != 1 || b.Damaged[0].Path != bad || !strings.Contains(b.Damaged[0].Error, "damaged") {
		t.Fatalf("damaged in --json: %+v", b.Damaged)
	}
	if !strings.Contains(r.err, "WARNING: "+bad+" is damaged here") || strings.Contains(r.err, "upload check failed") {
		t.Fatalf("stderr:\n%s", r.err)
	}
	for i, d := range []string{e.sshd.Dir, e.s3Dir} {
		rm := b.Remotes[i]
		if len(rm.Uploaded) != 3 || len(rm.Damaged) != 1 || rm.Damaged[0] != names[1] {
			t.Fatalf("remote %+v: want 3 sent, %s named damaged", rm, names[1])
		}
		got := sha256sumCheck(t, d)
		if len(got) != 3 || slices.Contains(got, names[1]) {
			t.Fatalf("%s holds %v: want all but the damaged one", d, got)
		}
	}
	m, _ := os.ReadFile(prom)
	if !strings.Contains(string(m), `sqlite_backup_damaged_backups{database="`+src+`"} 1`) {
		t.Fatalf("metrics:\n%s", m)
	}
	txt := e.run(t, nil, append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL}, e.flags...)...).must(t)
	if !strings.Contains(txt.err, "WARNING: "+bad+" is damaged here") || !strings.Contains(txt.out, "not sent off-site: "+names[1]+": damaged here") {
		t.Fatalf("text:\n%s%s", txt.out, txt.err)
	}
}

// TestRemoteFailurePrunesNoRemote: with two remotes, when the second
// fails no remote is pruned, though the first had every upload done
// (before, the first was pruned before the second failed). Locally only
// what every remote holds is pruned.
func TestRemoteFailurePrunesNoRemote(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 300})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	both := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL}, e.flags...)
	for range 3 {
		e.run(t, nil, append(both, "--keep", "0")...).must(t)
	}
	// One backup here only, then the S3 prefix gets a different file
	// under its name (no manifest: not a complete backup, whose it is
	// unknown), as a same-second upload of another database would. Then
	// an unverified backup, which goes nowhere but counts here.
	x4 := filepath.Base(parseFull(t, e.run(t, nil, "--source", src, "--backup-dir", bdir, "--keep", "0", "--json").must(t).out).Path)
	fake := []byte("not this backup")
	os.WriteFile(filepath.Join(e.s3Dir, x4), fake, 0o644)
	os.WriteFile(filepath.Join(e.s3Dir, x4+".sha256"), []byte(sumOf(fake)+"  "+x4+"\n"), 0o644)
	unverified := filepath.Base(parseFull(t, e.run(t, nil, "--source", src, "--backup-dir", bdir, "--keep", "0", "--no-verify", "--json").must(t).out).Path)

	r := e.run(t, nil, append(both, "--keep", "2", "--json")...)
	b := parseFull(t, r.out)
	if r.code != 1 || b.LocalOK == nil || !*b.LocalOK || b.RemotesOK == nil || *b.RemotesOK || b.PruneSkipped != "a remote failed" {
		t.Fatalf("exit %d\n%s%s", r.code, r.out, r.err)
	}
	if b.Remotes[0].Error != "" || b.Remotes[0].Pruned || len(b.Remotes[0].Removed) != 0 || !strings.Contains(b.Remotes[1].Error, "name conflict") {
		t.Fatalf("remotes: %+v", b.Remotes)
	}
	if n := sha256sumCheck(t, e.sshd.Dir); len(n) != 5 {
		t.Fatalf("the first remote was pruned while the second failed: it holds %v", n)
	}
	// Here: what both remotes hold is pruned by --keep 2; x4, which the
	// second lacks (and would keep), stays past the rules.
	local := sha256sumCheck(t, bdir)
	want := []string{x4, unverified, filepath.Base(b.Path)}
	if !sameSet(local, want) {
		t.Fatalf("local after the failure: %v, want %v", local, want)
	}
	if len(b.KeptForRemotes) != 1 || filepath.Base(b.KeptForRemotes[0]) != x4 {
		t.Fatalf("kept_for_remotes: %v", b.KeptForRemotes)
	}
	if !strings.Contains(r.err, "kept past the retention rules until every remote has them") {
		t.Fatalf("no warning:\n%s", r.err)
	}
}

// sameSet compares names in any order (a same-second "-2" sorts before
// the first).
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sumOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestRemoteOutage: while the SFTP server is down, each run still makes
// its local backup, reports separately that it stands and that the
// remote failed (with a hint that names the connection test, and the
// error without the URL it repeats), warns of the backups waiting for
// the remote, and prunes here what the remote holds: the disk does not
// fill. A backup that would leave less than --min-free is refused before
// anything is written. With the server back, the backlog is sent.
func TestRemoteOutage(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 300})
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	args := append([]string{"--source", src, "--backup-dir", bdir, "--keep", "2", "--remote", e.sshd.URL(), "--json"}, e.flags...)
	for range 2 {
		e.run(t, nil, args...).must(t)
	}
	before := sha256sumCheck(t, bdir)
	e.sshd.Kill()
	var last backupFull
	var made []string
	for i := range 3 {
		r := e.run(t, nil, args...)
		last = parseFull(t, r.out)
		made = append(made, filepath.Base(last.Path))
		if r.code != 1 || last.OK || last.LocalOK == nil || !*last.LocalOK || last.RemotesOK == nil || *last.RemotesOK {
			t.Fatalf("outage run %d: exit %d\n%s%s", i, r.code, r.out, r.err)
		}
		rm := last.Remotes[0]
		if strings.Contains(rm.Error, e.sshd.URL()) || !strings.HasPrefix(rm.Error, "unreachable") || !strings.Contains(rm.Hint, "sqlite-backup list --remote "+e.sshd.URL()) {
			t.Fatalf("outage run %d: remote error %q hint %q", i, rm.Error, rm.Hint)
		}
		if !strings.Contains(last.Hint, "list --remote") {
			t.Fatalf("outage run %d: no hint in the report: %q", i, last.Hint)
		}
		if !strings.Contains(r.err, "warning: remote "+e.sshd.URL()+" lacks") {
			t.Fatalf("outage run %d: no backlog warning:\n%s", i, r.err)
		}
	}
	// The two the remote holds are pruned; of the three it lacks, the
	// two it would keep wait here, the oldest it would remove at once.
	local := sha256sumCheck(t, bdir)
	if !sameSet(local, made[1:]) {
		t.Fatalf("local during the outage: %v, want %v (before: %v)", local, made[1:], before)
	}
	if p := last.Remotes[0].Pending; strings.Join(p, " ") != made[2]+" "+made[1] {
		t.Fatalf("pending: %v", p)
	}

	// No room: refused before anything is written.
	r := e.run(t, nil, append(args, "--min-free", "100000T")...)
	if r.code != 1 || !strings.Contains(r.err, "not enough free space") || !strings.Contains(r.err, "hint:") || !strings.Contains(r.err, "--min-free") {
		t.Fatalf("--min-free: exit %d\n%s", r.code, r.err)
	}
	if got := sha256sumCheck(t, bdir); len(got) != 2 || len(tempsIn(t, bdir)) != 0 {
		t.Fatalf("a refused run wrote %v %v", got, tempsIn(t, bdir))
	}

	e.sshd.Start(t)
	back := parseFull(t, e.run(t, nil, args...).must(t).out)
	if len(back.Remotes[0].Uploaded) != 3 {
		t.Fatalf("after the outage: %+v", back.Remotes[0])
	}
	if n := sha256sumCheck(t, e.sshd.Dir); len(n) != 2 {
		t.Fatalf("remote after the outage, --keep 2: %v", n)
	}
}

// TestRemotePreflightReadOnly: an SFTP account that may list but not
// write (internal-sftp -R) is found before the snapshot, by the
// backend's Check: exit 1 naming the directory as not writable, and no
// backup is made (before, the backup was made and its upload failed).
func TestRemotePreflightReadOnly(t *testing.T) {
	ro := testserver.StartSSHD(t, "ForceCommand internal-sftp -R")
	e := &remoteEnv{}
	env := append(os.Environ(), "SQLITE_BACKUP_REMOTE_BACKOFF=50ms", "HOME="+t.TempDir(), "SSH_AUTH_SOCK=")
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 100})
	bdir := filepath.Join(dir, "backups")
	r := e.run(t, env, "--source", src, "--backup-dir", bdir, "--remote", ro.URL(), "--ssh-key", ro.Key, "--known-hosts", ro.KnownHosts)
	if r.code != 1 || !strings.Contains(r.err, "not writable") || !strings.Contains(r.err, "hint:") {
		t.Fatalf("exit %d\n%s%s", r.code, r.out, r.err)
	}
	if bs, _ := filepath.Glob(filepath.Join(bdir, "app.db.*")); len(bs) != 0 {
		t.Fatalf("a backup was made for a remote that cannot take it: %v", bs)
	}
}
