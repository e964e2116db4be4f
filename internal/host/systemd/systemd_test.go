package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verify asks systemd's own parser about the units; install-deps.sh
// installs it.
func verify(t *testing.T, s Spec) (service, timer string) {
	t.Helper()
	service, timer, err := Units(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{s.Name + ".service": service, s.Name + ".timer": timer} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze not found; scripts/install-deps.sh installs it")
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, s.Name+".service"), filepath.Join(dir, s.Name+".timer"))
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\n--- service\n%s--- timer\n%s", err, out, service, timer)
	}
	return service, timer
}

func line(t *testing.T, unit, key string) string {
	t.Helper()
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in\n%s", key, unit)
	return ""
}

func TestUnitsPlain(t *testing.T) {
	service, timer := verify(t, Spec{
		Name:          "sqlite-backup-app",
		Description:   "sqlite-backup of /srv/app/app.db",
		Command:       []string{"/bin/true", "--source", "/srv/app/app.db", "--backup-dir", "/backup"},
		WritablePaths: []string{"/backup", "/srv/app", "/backup/"},
		Every:         "daily",
	})
	if got, want := line(t, service, "ExecStart"), "/bin/true --source /srv/app/app.db --backup-dir /backup"; got != want {
		t.Errorf("ExecStart=%s, want %s", got, want)
	}
	if got, want := line(t, service, "ReadWritePaths"), "/backup /srv/app"; got != want {
		t.Errorf("ReadWritePaths=%s, want %s", got, want)
	}
	if got := line(t, service, "Type"); got != "oneshot" {
		t.Errorf("Type=%s", got)
	}
	if strings.Contains(service, "User=") {
		t.Errorf("User= without a user:\n%s", service)
	}
	for key, want := range map[string]string{"OnCalendar": "daily", "Persistent": "true", "WantedBy": "timers.target"} {
		if got := line(t, timer, key); got != want {
			t.Errorf("timer %s=%s, want %s", key, got, want)
		}
	}
}

// Paths with spaces, quotes, $ and % reach the program literally.
func TestUnitsQuoting(t *testing.T) {
	src := `/srv/my app/we"ird$HOME%n\x.db`
	service, _ := verify(t, Spec{
		Name:          "sqlite-backup-weird",
		Description:   "sqlite-backup of " + src,
		Command:       []string{"/bin/true", "--source", src},
		WritablePaths: []string{"/srv/my app"},
		User:          "app",
		Every:         "Mon..Fri *-*-* 02:30",
	})
	want := `/bin/true --source "/srv/my app/we\"ird$$HOME%%n\\x.db"`
	if got := line(t, service, "ExecStart"); got != want {
		t.Errorf("ExecStart=%s\nwant       %s", got, want)
	}
	if got := line(t, service, "ReadWritePaths"); got != `"/srv/my app"` {
		t.Errorf("ReadWritePaths=%s", got)
	}
	if got := line(t, service, "User"); got != "app" {
		t.Errorf("User=%s", got)
	}
}

func TestScheduleIsACalendarExpression(t *testing.T) {
	for _, every := range []string{"hourly", "daily", "weekly", "monthly", "*-*-* 02:30", "Mon..Fri *-*-* 02:30"} {
		_, timer, err := Units(Spec{Name: "x", Command: []string{"/bin/true"}, Every: every})
		if err != nil {
			t.Fatal(err)
		}
		cal := line(t, timer, "OnCalendar")
		if out, err := exec.Command("systemd-analyze", "calendar", cal).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze calendar %q: %v\n%s", cal, err, out)
		}
	}
}

func TestUnitsRejects(t *testing.T) {
	for _, s := range []Spec{
		{Name: "", Command: []string{"/bin/true"}, Every: "daily"},
		{Name: "a/b", Command: []string{"/bin/true"}, Every: "daily"},
		{Name: "x", Command: []string{"true"}, Every: "daily"},
		{Name: "x", Command: nil, Every: "daily"},
		{Name: "x", Command: []string{"/bin/true"}, Every: ""},
		{Name: "x", Command: []string{"/bin/true"}, Every: "daily\nExecStartPre=/bin/evil"},
	} {
		if _, _, err := Units(s); err == nil {
			t.Errorf("Units(%+v) succeeded", s)
		}
	}
}

// Settings the command needs from its environment: the secrets by
// EnvironmentFile= (systemd reads it as root), the rest written out;
// paths under /tmp turn the private /tmp off and keep /tmp writable.
func TestUnitsEnvironmentAndTmp(t *testing.T) {
	service, _ := verify(t, Spec{
		Name:            "sqlite-backup-app",
		Description:     "sqlite-backup of /tmp/app/app.db",
		Command:         []string{"/bin/true", "backup", "--source", "/tmp/app/app.db"},
		WritablePaths:   []string{"/backup", "/tmp/app"},
		User:            "root",
		Every:           "daily",
		Environment:     []string{"AWS_ENDPOINT_URL=http://127.0.0.1:7070", "AWS_REGION=eu west %n"},
		EnvironmentFile: "/etc/sqlite-backup/app.env",
		SharedTmp:       []string{"/tmp/app/app.db"},
	})
	if got := line(t, service, "EnvironmentFile"); got != "/etc/sqlite-backup/app.env" {
		t.Errorf("EnvironmentFile=%s", got)
	}
	if !strings.Contains(service, "Environment=AWS_ENDPOINT_URL=http://127.0.0.1:7070\nEnvironment=\"AWS_REGION=eu west %%n\"\n") {
		t.Errorf("Environment= lines:\n%s", service)
	}
	if got := line(t, service, "PrivateTmp"); got != "no" {
		t.Errorf("PrivateTmp=%s with a path under /tmp", got)
	}
	if got := line(t, service, "ReadWritePaths"); got != "/backup /tmp/app /tmp" {
		t.Errorf("ReadWritePaths=%s", got)
	}
	if !strings.Contains(service, "# PrivateTmp= is off: a private /tmp would hide /tmp/app/app.db.\n") {
		t.Errorf("no comment that says why:\n%s", service)
	}

	// Without such a path the private /tmp stays.
	plain, _ := verify(t, Spec{Name: "x", Command: []string{"/bin/true"}, WritablePaths: []string{"/backup"}, Every: "daily"})
	if got := line(t, plain, "PrivateTmp"); got != "yes" {
		t.Errorf("PrivateTmp=%s", got)
	}
	for _, s := range []Spec{
		{Name: "x", Command: []string{"/bin/true"}, Every: "daily", EnvironmentFile: "relative.env"},
		{Name: "x", Command: []string{"/bin/true"}, Every: "daily", EnvironmentFile: "/etc/my app.env"},
		{Name: "x", Command: []string{"/bin/true"}, Every: "daily", Environment: []string{"NOEQUALS"}},
		{Name: "x", Command: []string{"/bin/true"}, Every: "daily", Environment: []string{"A=b\nExecStartPre=/bin/evil"}},
	} {
		if _, _, err := Units(s); err == nil {
			t.Errorf("Units(%+v) succeeded", s)
		}
	}
	for p, want := range map[string]bool{"/tmp": true, "/tmp/a": true, "/var/tmp/x/y": true, "/tmpx": false, "/srv/tmp": false, "/var/tmpfoo": false} {
		if UnderTmp(p) != want {
			t.Errorf("UnderTmp(%q) = %v", p, !want)
		}
	}
}
