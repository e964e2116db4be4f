package systest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// TestNoKeyMaterialPrinted: a private key given by mistake, wherever it
// comes from (a flag, with or without a leading space or in lower case,
// an OpenSSH key that kong takes for a flag, the environment, the config
// file, a stray argument, a flag that wants a path), never shows on
// stdout or stderr, in text or --json, in an error, a hint, a
// did-you-mean or config's table.
func TestNoKeyMaterialPrinted(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	bdir := filepath.Join(dir, "b")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	sk := id.String()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(blk))
	// What must never be seen: every 8 letters and digits of the
	// secrets past their well-known prefixes, in any case.
	var parts []string
	for _, s := range []string{sk[16:], strings.Join(strings.Split(pemKey, "\n")[1:4], "")} {
		for i := 0; i+8 <= len(s); i += 4 {
			if w := s[i : i+8]; strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == "" {
				parts = append(parts, strings.ToLower(w))
			}
		}
	}
	conf := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	quoted := conf("quoted.conf", "recipient = [\""+sk+"\"]\n")
	bare := conf("bare.conf", "recipient = "+sk+"\n")
	base := []string{"--source", src, "--backup-dir", bdir}
	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"-r secret", nil, append(base, "-r", sk)},
		{"-r space secret", nil, append(base, "-r", " "+sk)},
		{"-r lower-case secret", nil, append(base, "-r", strings.ToLower(sk))},
		{"-r OpenSSH private key", nil, append(base, "-r", pemKey)},
		{"--recipient=OpenSSH private key", nil, append(base, "--recipient="+pemKey)},
		{"env", []string{"SQLITE_BACKUP_RECIPIENT=" + sk}, base},
		{"config file", nil, append(base, "--config", quoted)},
		{"config file unquoted", nil, append(base, "--config", bare)},
		{"config command", nil, append([]string{"config"}, append(base, "-r", sk)...)},
		{"config command, config file", nil, append([]string{"config"}, append(base, "--config", quoted)...)},
		{"config command, env", []string{"SQLITE_BACKUP_RECIPIENT=" + sk}, append([]string{"config"}, base...)},
		{"config command, OpenSSH key", nil, append([]string{"config"}, append(base, "--recipient="+pemKey)...)},
		{"stray argument", nil, []string{sk}},
		{"stray argument lower case", nil, []string{strings.ToLower(sk)}},
		{"key as identity path", nil, []string{"verify", "-i", sk, src}},
		{"OpenSSH key as identity path", nil, []string{"verify", "--identity=" + pemKey, src}},
		{"key as file to verify", nil, []string{"verify", sk}},
		{"key as source", nil, []string{"--source", sk, "--backup-dir", bdir}},
		{"key as backup dir", nil, []string{"list", "--backup-dir", filepath.Join(dir, sk)}},
		{"key as remote", nil, []string{"list", "--remote", "s3://" + sk}},
		{"key as s3 endpoint", nil, []string{"list", "--remote", "s3://bucket/x", "--s3-endpoint", sk}},
		{"key as systemd recipient", nil, []string{"systemd", "--source", src, "-r", sk}},
	}
	for _, c := range cases {
		for _, js := range []bool{false, true} {
			args := c.args
			if js {
				args = append(append([]string{}, args...), "--json")
			}
			r := runBin(t, runOpts{env: c.env}, args...)
			all := strings.ToLower(r.stdout + r.stderr)
			for _, p := range parts {
				if strings.Contains(all, p) {
					t.Errorf("%s (json %v): exit %d, output holds key material %q:\nstdout: %s\nstderr: %s", c.name, js, r.code, p, r.stdout, r.stderr)
					break
				}
			}
		}
	}
	if _, err := os.Stat(bdir); err == nil {
		if b := backupsIn(t, bdir); len(b) > 0 {
			t.Errorf("a run with a private key as recipient made backups: %v", b)
		}
	}
}

// TestNamesShownNotObeyed: a file name is anyone's. One that holds
// terminal escape sequences (set the window title, clear the screen, a
// bidi override) is shown escaped by backup, list, prune and verify, and
// one with a newline cannot forge a line of their output; --json
// escapes both as JSON does.
func TestNamesShownNotObeyed(t *testing.T) {
	dir := t.TempDir()
	for _, evil := range []string{
		"\x1b]0;pwned\x07\x1b[2J\u202eevil\r\x7f\u009b.db",
		"evil\nFORGED: ok.db",
	} {
		bdir := filepath.Join(dir, fmt.Sprintf("b%d", len(evil)))
		os.Mkdir(bdir, 0o700)
		src := filepath.Join(dir, evil)
		cli3(t, filepath.Join(dir, "plain.db"), "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
		if err := os.Rename(filepath.Join(dir, "plain.db"), src); err != nil {
			t.Fatal(err)
		}
		var b string
		runs := [][]string{{"--source", src, "--backup-dir", bdir, "--keep", "1"}}
		for i := 0; i < len(runs); i++ {
			for _, js := range []bool{false, true} {
				a := runs[i]
				if js {
					a = append(append([]string{}, a...), "--json")
				}
				r := runBin(t, runOpts{}, a...)
				out := r.stdout + r.stderr
				if js && !json.Valid([]byte(r.stdout)) {
					t.Errorf("%q: --json output is not JSON:\n%s", a, r.stdout)
				}
				for _, c := range out {
					if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u202e' {
						t.Errorf("%q (exit %d): control character %U printed raw:\n%s", a, r.code, c, out)
						break
					}
				}
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "FORGED") {
						t.Errorf("%q: a newline in a name forged a line:\n%s", a, out)
					}
				}
				if !strings.Contains(out, "evil") {
					t.Errorf("%q: the file is not named at all:\n%s", a, out)
				}
			}
			if i > 0 {
				continue
			}
			for _, n := range listDir(t, bdir) {
				if !strings.HasPrefix(n, ".") && !strings.HasSuffix(n, ".sha256") && !strings.HasSuffix(n, ".json") {
					b = filepath.Join(bdir, n)
				}
			}
			if b == "" {
				t.Fatalf("no backup of %q: %v", evil, listDir(t, bdir))
			}
			runs = append(runs, []string{"verify", b, b + ".sha256"}, []string{"verify", b + "x"})
			if !strings.Contains(evil, "\n") {
				// (Backups of a name with a newline are not listed: see
				// docs/SECURITY.md.)
				runs = append(runs,
					[]string{"list", "--backup-dir", bdir},
					[]string{"list", "--backup-dir", bdir, "--verify"},
					[]string{"--source", src, "--backup-dir", bdir, "--keep", "2"},
					[]string{"prune", "--backup-dir", bdir, "--source", src, "--keep", "1", "--dry-run"},
					[]string{"--source", src, "--backup-dir", bdir, "--keep", "1"})
			}
		}
	}
}

// TestHintsPasteSafely: every path a hint shows is shell-quoted, so the
// hint line pasted into a shell runs what it shows and nothing else.
// Everything happens in a directory named with a quote, a space and
// $(touch pwned); each hint's command is run by sh -c in a scratch
// directory with the commands it names (sqlite-backup, mkdir, ls, mv,
// sqlite3, sudo) replaced by stubs that log their arguments: nothing
// may create "pwned", and the stub must receive the path whole.
func TestHintsPasteSafely(t *testing.T) {
	root := t.TempDir()
	hostile := filepath.Join(root, "it's x$(touch pwned)")
	if err := os.Mkdir(hostile, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(hostile, "app.db")
	cli3(t, src, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	bdir := filepath.Join(hostile, "b")
	if r := runBin(t, runOpts{}, "--source", src, "--backup-dir", bdir); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	bk := backupsIn(t, bdir)[0]
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	edir := filepath.Join(hostile, "enc")
	if r := runBin(t, runOpts{}, "--source", src, "--backup-dir", edir, "-r", id.Recipient().String()); r.code != 0 {
		t.Fatalf("encrypted backup: exit %d\n%s", r.code, r.stderr)
	}
	encs, _ := filepath.Glob(filepath.Join(edir, "*.age"))
	if len(encs) != 1 {
		t.Fatalf("encrypted backups: %v", listDir(t, edir))
	}
	enc := encs[0]
	// A backup with a -wal beside it is not self-contained.
	loose := filepath.Join(hostile, "loose.db")
	copyFile(t, bk, loose, 0o600)
	os.WriteFile(loose+"-wal", []byte("x"), 0o600)
	// A backup that fails its check.
	bad := filepath.Join(hostile, "bad.db.20260101_120000")
	copyFile(t, bk, bad, 0o600)
	flipByte(t, bad, 100)
	os.WriteFile(src+"-shm", nil, 0o600) // make src-wal/-shm exist for the sidecar cases
	cli3(t, src, "PRAGMA wal_checkpoint; INSERT INTO t VALUES(2);")

	stubs := t.TempDir()
	for _, c := range []string{"sqlite-backup", "mkdir", "ls", "mv", "sqlite3", "sudo"} {
		script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\" >> \"$STUBLOG\"; done\n"
		if err := os.WriteFile(filepath.Join(stubs, c), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		want string // an argument the pasted command must pass whole
	}{
		{"--backup into a missing dir", []string{"--source", src, "--backup", filepath.Join(hostile, "no", "b.db")}, filepath.Join(hostile, "no")},
		{"--source a directory", []string{"--source", hostile, "--backup-dir", bdir}, src},
		{"--source a -wal file", []string{"--source", src + "-wal", "--backup-dir", bdir}, src},
		{"--backup the source itself", []string{"--source", src, "--backup", src}, src},
		{"restore over an existing target", []string{"restore", bk, "--to", src}, src},
		{"restore into a missing dir", []string{"restore", bk, "--to", filepath.Join(hostile, "no", "app.db")}, filepath.Join(hostile, "no")},
		{"restore to a -wal file", []string{"restore", bk, "--to", src + "-wal"}, src},
		{"restore of a loose backup", []string{"restore", loose, "--to", filepath.Join(hostile, "new.db")}, loose},
		{"restore of a damaged backup", []string{"restore", bad, "--to", filepath.Join(hostile, "new.db")}, hostile},
		{"restore of an encrypted backup without -i", []string{"restore", enc, "--to", filepath.Join(hostile, "new.db")}, enc},
		{"verify of an encrypted backup without -i", []string{"verify", enc}, enc},
		{"verify --deep of a sealed manifest without -i", []string{"verify", "--deep", enc}, enc},
		{"list --verify of encrypted backups", []string{"list", "--backup-dir", edir, "--verify"}, edir},
	}
	for _, c := range cases {
		r := runBin(t, runOpts{dir: root}, c.args...)
		var h string
		for _, l := range strings.Split(r.stderr, "\n") {
			if v, ok := strings.CutPrefix(l, "hint: "); ok {
				h = v
			}
		}
		if h == "" {
			t.Errorf("%s: exit %d, no hint:\n%s", c.name, r.code, r.stderr)
			continue
		}
		cmdline := commandOfHint(h)
		if cmdline == "" {
			t.Errorf("%s: no command in the hint %q", c.name, h)
			continue
		}
		scratch := t.TempDir()
		logf := filepath.Join(scratch, "stub.log")
		sh := exec.Command("sh", "-c", cmdline)
		sh.Dir = scratch
		sh.Env = append(os.Environ(), "PATH="+stubs+":/usr/bin:/bin", "STUBLOG="+logf)
		out, _ := sh.CombinedOutput()
		if _, err := os.Stat(filepath.Join(scratch, "pwned")); err == nil {
			t.Errorf("%s: the pasted hint ran code:\nhint: %s\n%s", c.name, h, out)
			continue
		}
		logged, _ := os.ReadFile(logf)
		if !strings.Contains("\x00"+string(logged), "\x00"+c.want+"\x00") {
			t.Errorf("%s: the pasted hint did not pass %q as one argument:\nhint: %s\nargs: %q\n%s", c.name, c.want, h, strings.Split(string(logged), "\x00"), out)
		}
	}
}

// commandOfHint is the part of a hint line one would paste: from the
// first command it names to the end, without a trailing "   (…)" note
// or a "(…)" aside that follows it.
func commandOfHint(h string) string {
	start := -1
	for _, c := range []string{"sqlite-backup ", "mkdir ", "ls ", "mv ", "sqlite3 ", "sudo "} {
		if i := strings.Index(h, c); i >= 0 && (i == 0 || h[i-1] == ' ') && (start < 0 || i < start) {
			start = i
		}
	}
	if start < 0 {
		return ""
	}
	cmd := h[start:]
	if i := strings.Index(cmd, "   ("); i >= 0 {
		cmd = cmd[:i]
	}
	if i := strings.Index(cmd, " (or "); i >= 0 {
		cmd = cmd[:i]
	}
	if i := strings.Index(cmd, "; or "); i >= 0 {
		cmd = cmd[:i]
	}
	return cmd
}

// flipByte inverts one byte of p at off.
func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestKilledVerifyLeavesNoPlaintext: verify -i decrypts a backup into
// its temp dir to check it. Killed with SIGKILL while the decrypted copy
// is being written, it leaves that plaintext behind; the next verify
// that uses the temp dir (even of a plain backup, which decrypts
// nothing) removes it, and leaves alone the copy of a verify that is
// still running.
func TestKilledVerifyLeavesNoPlaintext(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILL scenario: skipped with -short")
	}
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	os.WriteFile(key, []byte(id.String()+"\n"), 0o600)
	bdir := filepath.Join(dir, "b")
	src := sharedBigDB(t)
	if r := runBin(t, runOpts{}, "--source", src, "--backup-dir", bdir, "-r", id.Recipient().String()); r.code != 0 {
		t.Fatalf("encrypted backup: exit %d\n%s", r.code, r.stderr)
	}
	encs, _ := filepath.Glob(filepath.Join(bdir, "*.age"))
	small := filepath.Join(dir, "small.db")
	cli3(t, small, "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o700)

	killed := 0
	for range 3 {
		p := startProc(t, command(t, runOpts{}, "sqlite-backup", "verify", "-i", key, "--temp-dir", tmp, encs[0]))
		if !p.until(func() bool { return plaintextIn(tmp) != "" }) {
			continue // finished before a byte was seen: try again
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait()
		killed++
	}
	if killed == 0 {
		t.Fatal("verify finished each time before its decrypted copy was seen")
	}
	if p := plaintextIn(tmp); p == "" {
		t.Fatal("the killed runs left no plaintext: the scenario did not happen")
	}
	if r := runBin(t, runOpts{}, "verify", "--temp-dir", tmp, small); r.code != 0 {
		t.Fatalf("verify of a plain file: exit %d\n%s", r.code, r.stderr)
	}
	if left := listDir(t, tmp); len(left) > 0 {
		t.Fatalf("after the next verify, the killed runs' files are still in the temp dir: %v", left)
	}

	// A live run's copy is not a dead run's.
	cmd := command(t, runOpts{}, "sqlite-backup", "verify", "-i", key, "--temp-dir", tmp, encs[0])
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	p := startProc(t, cmd)
	concurrent := p.until(func() bool { return plaintextIn(tmp) != "" })
	if concurrent {
		if r := runBin(t, runOpts{}, "verify", "--temp-dir", tmp, small); r.code != 0 {
			t.Fatalf("verify beside a live one: exit %d\n%s", r.code, r.stderr)
		}
	}
	if err := p.wait(); err != nil {
		t.Fatalf("the live verify failed while another ran beside it: %v\n%s", err, out.String())
	}
	if left := listDir(t, tmp); len(left) > 0 {
		t.Fatalf("a finished verify left %v", left)
	}
	t.Logf("%d verify -i runs killed while decrypting; the next run removed what they left; a run beside a live one (seen: %v) left it alone", killed, concurrent)
}

// proc is a started process whose end can be waited for more than once.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

func (p *proc) wait() error { <-p.done; return p.err }

// until polls cond until it holds (true) or the process ended (false).
func (p *proc) until(cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-p.done:
			return cond()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// plaintextIn finds a file under dir that starts with SQLite's header.
func plaintextIn(dir string) string {
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" || !d.Type().IsRegular() {
			return nil
		}
		if f, err := os.Open(p); err == nil {
			b := make([]byte, 16)
			n, _ := f.Read(b)
			f.Close()
			if string(b[:n]) == "SQLite format 3\x00" {
				found = p
			}
		}
		return nil
	})
	return found
}

// TestEndpointPasswordNotPrinted: a password in --s3-endpoint (or
// SQLITE_BACKUP_S3_ENDPOINT, or AWS_ENDPOINT_URL) never shows, whether
// the URL is otherwise good, of the wrong scheme or unparsable; an
// endpoint with credentials is refused (they belong in the AWS
// variables).
func TestEndpointPasswordNotPrinted(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "CREATE TABLE t(x);")
	const pw = "s3cr3tPassw0rd"
	for _, ep := range []string{
		"https://AKIA:" + pw + "@127.0.0.1:1",
		"ftp://AKIA:" + pw + "@127.0.0.1:1",
		"https://AKIA:" + pw + " x@127.0.0.1:1/%zz",
		"AKIA:" + pw + "@127.0.0.1:1",
	} {
		for _, run := range []struct {
			env  []string
			args []string
		}{
			{nil, []string{"list", "--remote", "s3://bucket/p", "--s3-endpoint", ep}},
			{nil, []string{"list", "--remote", "s3://bucket/p", "--s3-endpoint", ep, "--json"}},
			{[]string{"SQLITE_BACKUP_S3_ENDPOINT=" + ep}, []string{"verify", "s3://bucket/p/app.db.20260101_120000"}},
			{[]string{"AWS_ENDPOINT_URL=" + ep}, []string{"verify", "s3://bucket/p/app.db.20260101_120000", "--json"}},
			{nil, []string{"config", "--source", src, "--s3-endpoint", ep}},
			{nil, []string{"config", "--source", src, "--s3-endpoint", ep, "--json"}},
		} {
			env := append([]string{"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"}, run.env...)
			r := runBin(t, runOpts{env: env}, run.args...)
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Errorf("%q %v: exit %d, the password is printed:\n%s%s", run.args, run.env, r.code, r.stdout, r.stderr)
			}
			if run.args[0] != "config" && r.code == 0 {
				t.Errorf("%q %v: exit 0 with a password in the endpoint", run.args, run.env)
			}
		}
	}
}

// TestPlainFileNamedAge: a plain SQLite backup under an encrypted name
// (….age, with a matching .sha256) is a sound database, so verify says
// ok, but never without saying it is not encrypted: in text, --json and
// list --verify.
func TestPlainFileNamedAge(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	bdir := filepath.Join(dir, "b")
	if r := runBin(t, runOpts{}, "--source", src, "--backup-dir", bdir); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	plain := backupsIn(t, bdir)[0]
	named := plain + ".age"
	os.Rename(plain, named)
	sum, _ := os.ReadFile(plain + ".sha256")
	os.WriteFile(named+".sha256", []byte(strings.Replace(string(sum), filepath.Base(plain), filepath.Base(named), 1)), 0o600)
	os.Remove(plain + ".sha256")
	os.Rename(plain+".json", named+".json")

	r := runBin(t, runOpts{}, "verify", named)
	if r.code != 0 || !strings.Contains(r.stdout, ": ok (sha256 ok); NOT ENCRYPTED") {
		t.Errorf("verify: exit %d, want ok with NOT ENCRYPTED\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, runOpts{}, "verify", named, "--json")
	var res struct {
		OK   bool   `json:"ok"`
		Note string `json:"note"`
	}
	oneResult(t, r.stdout, &res)
	if !res.OK || !strings.Contains(res.Note, "NOT ENCRYPTED") {
		t.Errorf("verify --json: %+v\n%s", res, r.stdout)
	}
	r = runBin(t, runOpts{}, "list", "--backup-dir", bdir, "--verify")
	if !strings.Contains(r.stdout, "NOT ENCRYPTED") {
		t.Errorf("list --verify: exit %d, no NOT ENCRYPTED\n%s%s", r.code, r.stdout, r.stderr)
	}
}
