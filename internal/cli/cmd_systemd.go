package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/alecthomas/kong"

	"sqlite-backup/config"
	"sqlite-backup/internal/host/systemd"
	"sqlite-backup/internal/output/metrics"
)

// SystemdCmd prints a service + timer pair for a scheduled backup. It
// installs nothing; the printed text says how to.
type SystemdCmd struct {
	Every       string `default:"daily" placeholder:"WHEN" help:"hourly, daily, weekly, monthly, or a systemd OnCalendar= expression such as \"*-*-* 02:30\" (default ${default})."`
	Name        string `placeholder:"UNIT" help:"Unit name without .service/.timer (default sqlite-backup-<db name>)."`
	User        string `placeholder:"USER" help:"Run as USER (default root); it must be able to read the database and write the backup directory."`
	Binary      string `default:"/usr/local/bin/sqlite-backup" placeholder:"PATH" help:"Path of the installed binary (default ${default})."`
	MetricsFile string `placeholder:"PATH" help:"Add --metrics-file PATH to the backup command."`
	Print       string `enum:"both,service,timer" default:"both" help:"Print both units with install instructions, or only the service or the timer, e.g. to pipe into sudo tee (${enum})."`
}

var unitUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func (c *SystemdCmd) Run(kctx *kong.Context, g *Globals) error {
	src, err := findSource(kctx, g)
	if err != nil {
		return err
	}
	source, err := filepath.Abs(src.Path)
	if err != nil {
		return err
	}
	backupDir, err := filepath.Abs(g.BackupDir)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(c.Binary) {
		return usagef("sqlite-backup systemd --source /srv/app/app.db --binary /usr/local/bin/sqlite-backup",
			"--binary %q: systemd needs an absolute path", c.Binary)
	}
	if err := systemd.CheckCalendar(c.Every); err != nil {
		return usagef(`sqlite-backup systemd --every daily   (or hourly, weekly, monthly, "*-*-* 02:30", "Mon..Fri 03:00"; test one with: systemd-analyze calendar "EXPR")`, "--every: %v", err)
	}
	if err := systemd.CheckUser(c.User); err != nil {
		return usagef(fmt.Sprintf("create it first (sudo useradd --system --no-create-home --shell /usr/sbin/nologin %s), or give an existing user: sqlite-backup systemd --user root", shellQuote(c.User)), "--user: %v", err)
	}
	name := c.Name
	if name == "" {
		base := strings.TrimSuffix(filepath.Base(source), filepath.Ext(source))
		name = "sqlite-backup-" + strings.Trim(unitUnsafe.ReplaceAllString(base, "-"), "-")
	}

	cmd := []string{c.Binary, "--source", source, "--backup-dir", backupDir}
	if o := originOf(kctx, "busy-timeout"); o.Origin != config.FromDefault {
		cmd = append(cmd, "--busy-timeout", g.BusyTimeout.String())
	}
	writable := []string{backupDir, filepath.Dir(source)}
	if c.MetricsFile != "" {
		mf, err := metrics.Open(c.MetricsFile)
		if err != nil {
			return err
		}
		cmd = append(cmd, "--metrics-file", mf.Path)
		writable = append(writable, filepath.Dir(mf.Path))
	}

	service, timer, err := systemd.Units(systemd.Spec{
		Name:          name,
		Description:   "sqlite-backup of " + source,
		Command:       cmd,
		WritablePaths: writable,
		User:          c.User,
		Every:         c.Every,
	})
	if err != nil {
		return usagef("sqlite-backup systemd --source /srv/app/app.db --every daily", "%v", err)
	}
	// The install commands are printed whole, ready to paste: this same
	// command with everything resolved, once per unit.
	self := []string{c.Binary, "systemd", "--source", source, "--backup-dir", backupDir, "--every", c.Every, "--name", name}
	if c.User != "" {
		self = append(self, "--user", c.User)
	}
	if o := originOf(kctx, "binary"); o.Origin != config.FromDefault {
		self = append(self, "--binary", c.Binary)
	}
	var install []string
	if exe, err := os.Executable(); err == nil && exe != c.Binary {
		install = append(install, fmt.Sprintf("sudo install -m 755 %s %s", shellQuote(exe), shellQuote(c.Binary)))
	}
	if c.MetricsFile != "" {
		self = append(self, "--metrics-file", cmd[len(cmd)-1])
	}
	if o := originOf(kctx, "busy-timeout"); o.Origin != config.FromDefault {
		self = append(self, "--busy-timeout", g.BusyTimeout.String())
	}
	quoted := make([]string, len(self))
	for i, a := range self {
		quoted[i] = shellQuote(a)
	}
	gen := strings.Join(quoted, " ")
	install = append(install,
		"sudo mkdir -p -m 700 "+shellQuote(backupDir),
		fmt.Sprintf("%s --print service | sudo tee /etc/systemd/system/%s.service >/dev/null", gen, name),
		fmt.Sprintf("%s --print timer | sudo tee /etc/systemd/system/%s.timer >/dev/null", gen, name),
		fmt.Sprintf("sudo systemctl daemon-reload && sudo systemctl enable --now %s.timer", name),
	)
	if g.JSON {
		g.addResult(struct {
			Name    string   `json:"name"`
			Service string   `json:"service"`
			Timer   string   `json:"timer"`
			Install []string `json:"install"`
		}{name, service, timer, install})
		return nil
	}
	w := g.stdout
	switch c.Print {
	case "service":
		_, err = fmt.Fprint(w, service)
		return err
	case "timer":
		_, err = fmt.Fprint(w, timer)
		return err
	}
	fmt.Fprintf(w, "# /etc/systemd/system/%s.service\n%s\n# /etc/systemd/system/%s.timer\n%s", name, service, name, timer)
	fmt.Fprintf(w, "\n# Install (the backup directory must exist; ProtectSystem=strict makes\n# everything else read-only for the service), as one who may sudo:\n")
	for _, l := range install {
		fmt.Fprintf(w, "#   %s\n", l)
	}
	fmt.Fprintf(w, `# Check:
#   systemctl list-timers %[1]s.timer
#   sudo systemctl start %[1]s.service && journalctl -u %[1]s.service -n 20
`, name)
	return nil
}
