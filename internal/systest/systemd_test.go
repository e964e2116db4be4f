package systest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/internal/testserver"
)

// TestSystemdUnitRunsWhatConfigShows: settings from a config file (a
// remote, compression, keep = 5, the backup dir), from SQLITE_BACKUP_*
// and from the command line (relative paths, a recipient) all reach the
// unit. The unit is resolved as systemd would run it (ExecStart's words
// unquoted, Environment=, EnvironmentFile=, working directory /, a HOME
// of its own, nothing else of this shell) and its command, with config
// --json in place of backup, must show exactly the settings config
// --json shows for the same command line here. Then the unit's command
// itself runs against versitygw: a compressed, encrypted backup here and
// in the bucket, metrics written. The S3 secret never appears in the
// printed unit; systemd-analyze checks the unit.
func TestSystemdUnitRunsWhatConfigShows(t *testing.T) {
	s3 := testserver.StartS3(t)
	s3.MakeBucket(t, "backups")
	bin, err := exec.LookPath("sqlite-backup")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testdb.Create(t, filepath.Join(dir, "app.db"), testdb.Options{Rows: 500})
	os.Mkdir(filepath.Join(dir, "textfile"), 0o755)
	cfg := filepath.Join(dir, "backup.toml")
	os.WriteFile(cfg, []byte(`remote = "s3://backups/host1"
compress = "zstd"
keep = 5
backup-dir = "`+filepath.Join(dir, "bk")+`"
`), 0o644)
	id, _ := age.GenerateX25519Identity()
	envFile := filepath.Join(dir, "unit.env")
	os.WriteFile(envFile, []byte("# the unit's secrets\nAWS_ACCESS_KEY_ID="+s3.Access+"\nAWS_SECRET_ACCESS_KEY="+s3.Secret+"\n"), 0o600)

	var shell []string // this shell: everything the operator has set
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "SQLITE_BACKUP_") {
			shell = append(shell, kv)
		}
	}
	shell = append(shell, "SQLITE_BACKUP_SHRINK_GUARD=30", "SQLITE_BACKUP_LOCK_TIMEOUT=1m",
		"AWS_ENDPOINT_URL="+s3.Endpoint(), "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+s3.Access, "AWS_SECRET_ACCESS_KEY="+s3.Secret)
	flags := []string{"--config", "backup.toml", "--source", "app.db", "--busy-timeout", "1m", "--metrics-file", "textfile/db.prom", "-r", id.Recipient().String(), "--deep"}
	run := func(env []string, cwd string, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env, cmd.Dir = env, cwd
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, so.String(), se.String())
		}
		return so.String(), se.String()
	}

	sys := append([]string{bin, "systemd"}, flags...)
	sys = append(sys, "--binary", bin, "--env-file", envFile)
	service, _ := run(shell, dir, append(sys, "--print", "service")...)
	timer, _ := run(shell, dir, append(sys, "--print", "timer")...)
	if strings.Contains(service, s3.Secret) || strings.Contains(service, "AWS_SECRET_ACCESS_KEY") || strings.Contains(service, "AWS_ACCESS_KEY_ID") {
		t.Fatalf("a secret is in the unit:\n%s", service)
	}
	analyze(t, "sqlite-backup-app", service, timer)

	// The unit as systemd runs it.
	var argv, unitEnv []string
	home := t.TempDir()
	unitEnv = []string{"HOME=" + home, "USER=root", "LOGNAME=root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, kv := range shell { // the tests' guard, which is not the unit's
		if strings.HasPrefix(kv, "SBTEST_") {
			unitEnv = append(unitEnv, kv)
		}
	}
	for _, l := range strings.Split(service, "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "ExecStart":
			argv = unitWords(t, v)
		case "Environment":
			unitEnv = append(unitEnv, unitWords(t, v)...)
		case "EnvironmentFile":
			b, err := os.ReadFile(strings.ReplaceAll(v, "%%", "%"))
			if err != nil {
				t.Fatal(err)
			}
			for _, el := range strings.Split(string(b), "\n") {
				if el = strings.TrimSpace(el); el != "" && !strings.HasPrefix(el, "#") {
					unitEnv = append(unitEnv, el)
				}
			}
		}
	}
	if len(argv) < 2 || argv[0] != bin || argv[1] != "backup" {
		t.Fatalf("ExecStart=%q, want %s backup …", argv, bin)
	}
	if !strings.Contains(service, "\nEnvironment=AWS_ENDPOINT_URL="+s3.Endpoint()+"\n") || !strings.Contains(service, "\nEnvironmentFile="+envFile+"\n") {
		t.Errorf("the unit lacks the endpoint or the environment file:\n%s", service)
	}
	if !strings.Contains(service, "\nPrivateTmp=no\n") || !strings.Contains(service, "ReadWritePaths=") || !strings.Contains(service, " /tmp\n") {
		t.Errorf("paths under /tmp (%s) and a private /tmp:\n%s", dir, service)
	}

	unitCfg, _ := run(unitEnv, "/", append(append([]string{bin, "config"}, argv[2:]...), "--json")...)
	hereCfg, _ := run(shell, dir, append(append([]string{bin, "config"}, flags...), "--json")...)
	unit, here := settings(t, unitCfg, "/"), settings(t, hereCfg, dir)
	if len(unit) < 20 {
		t.Fatalf("config shows %d settings:\n%s", len(unit), unitCfg)
	}
	for k, v := range here {
		if unit[k] != v {
			t.Errorf("%s: the unit runs with %q, config here shows %q", k, unit[k], v)
		}
	}
	for k := range unit {
		if _, ok := here[k]; !ok {
			t.Errorf("%s: only in the unit's settings", k)
		}
	}
	for k, want := range map[string]string{"remote": "s3://backups/host1", "compress": "zstd", "keep": "5", "shrink-guard": "30", "lock-timeout": "1m0s", "deep": "true"} {
		if here[k] != want {
			t.Errorf("config here shows %s=%q, want %q (the test's own setup)", k, here[k], want)
		}
	}

	// And the unit's own command does it.
	out, _ := run(unitEnv, "/", argv...)
	if !strings.Contains(out, ".zst.age: integrity_check ok") || !strings.Contains(out, "remote s3://backups/host1: ok, uploaded 1") {
		t.Fatalf("the unit's run:\n%s", out)
	}
	if n := sha256sumCheck(t, filepath.Join(dir, "bk")); len(n) != 1 || !strings.HasSuffix(n[0], ".zst.age") {
		t.Fatalf("local backups: %v", n)
	}
	if m, err := os.ReadFile(filepath.Join(dir, "textfile", "db.prom")); err != nil || !strings.Contains(string(m), "sqlite_backup_last_run_success") {
		t.Fatalf("metrics: %v\n%s", err, m)
	}
	objs, _ := filepath.Glob(filepath.Join(s3.Dir, "backups", "host1", "app.db.*.zst.age"))
	if len(objs) != 1 {
		t.Fatalf("in the bucket: %v", objs)
	}
}

// TestSystemdRefusesWhatATimerCannotDo: what the unit could not carry is
// a usage error before any unit is printed.
func TestSystemdRefusesWhatATimerCannotDo(t *testing.T) {
	dir := t.TempDir()
	testdb.Create(t, filepath.Join(dir, "app.db"), testdb.Options{Rows: 10})
	// An identity protected by a passphrase: no terminal answers a timer.
	id, _ := age.GenerateX25519Identity()
	sr, _ := age.NewScryptRecipient("a passphrase")
	var enc bytes.Buffer
	w, _ := age.Encrypt(&enc, sr)
	w.Write([]byte(id.String() + "\n"))
	w.Close()
	os.WriteFile(filepath.Join(dir, "key.age"), enc.Bytes(), 0o600)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"identity with a passphrase", []string{"-i", "key.age"}, "a timer has no terminal to ask on"},
		// nobody's home is /nonexistent: no key, no known_hosts, no agent.
		{"sftp without a key the unit can use", []string{"--user", "nobody", "--remote", "sftp://backup@db2.example/srv/backups"}, "the unit runs as nobody without an ssh-agent, and /nonexistent has no key"},
		{"sftp without known_hosts the unit can use", []string{"--user", "nobody", "--remote", "sftp://backup@db2.example/srv/backups", "--ssh-key", "key.age"}, "the unit runs as nobody, and /nonexistent/.ssh/known_hosts does not exist"},
		{"one --backup file", []string{"--backup", "x.db"}, "a timer needs --backup-dir"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("sqlite-backup", append([]string{"systemd", "--source", "app.db"}, c.args...)...)
			cmd.Dir = dir
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || so.Len() > 0 || !strings.Contains(se.String(), c.want) || !strings.Contains(se.String(), "\nhint: ") {
				t.Fatalf("%v (want exit 2, no unit, %q and a hint)\nstdout: %s\nstderr: %s", err, c.want, so.String(), se.String())
			}
		})
	}
}

// settings is config --json as name → value, paths made absolute from
// cwd (the two runs give them differently; the files must be the same).
func settings(t *testing.T, out, cwd string) map[string]string {
	t.Helper()
	var rep struct {
		Results []struct {
			Name, Value string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("config --json %q: %v", out, err)
	}
	m := map[string]string{}
	for _, r := range rep.Results {
		v := r.Value
		switch r.Name {
		case "json", "app-dir": // how this command prints; where .env is looked for, unused with --source
			continue
		case "config", "source", "metrics-file", "backup-dir", "recipients-file", "identity", "ssh-key", "known-hosts":
			if v != "" && !filepath.IsAbs(v) {
				v = filepath.Join(cwd, v)
			}
		}
		m[r.Name] = v
	}
	return m
}

// unitWords splits a unit's value as systemd does for ExecStart= and
// Environment=: words apart on spaces, double quotes with \" and \\,
// $$ for $ and %% for % (the generator's whole repertoire).
func unitWords(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	var w strings.Builder
	in, any := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '%' && i+1 < len(s) && s[i+1] == '%', ch == '$' && i+1 < len(s) && s[i+1] == '$':
			w.WriteByte(ch)
			i++
			any = true
		case ch == '%' || ch == '$':
			t.Fatalf("unescaped %c in %q", ch, s)
		case in && ch == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				w.WriteByte('\n')
			case 't':
				w.WriteByte('\t')
			default:
				w.WriteByte(s[i])
			}
		case ch == '"':
			in, any = !in, true
		case ch == ' ' && !in:
			if any {
				out = append(out, w.String())
			}
			w.Reset()
			any = false
		default:
			w.WriteByte(ch)
			any = true
		}
	}
	if in {
		t.Fatalf("unclosed quote in %q", s)
	}
	if any {
		out = append(out, w.String())
	}
	return out
}

// analyze runs systemd-analyze verify on the two units.
func analyze(t *testing.T, name, service, timer string) {
	t.Helper()
	sa := testserver.Need(t, "systemd-analyze")
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, name+".service"), []byte(service), 0o644)
	os.WriteFile(filepath.Join(d, name+".timer"), []byte(timer), 0o644)
	cmd := exec.Command(sa, "verify", "--man=no", filepath.Join(d, name+".service"), filepath.Join(d, name+".timer"))
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, service)
	}
}
