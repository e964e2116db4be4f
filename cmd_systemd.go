package main

import (
	"fmt"
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
	fmt.Fprintf(w, `
# Install (the backup directory must exist; ProtectSystem=strict makes
# everything else read-only for the service):
#   sudo mkdir -p -m 700 %[2]s
#   sqlite-backup systemd ... --print service | sudo tee /etc/systemd/system/%[1]s.service
#   sqlite-backup systemd ... --print timer | sudo tee /etc/systemd/system/%[1]s.timer
#   sudo systemctl daemon-reload && sudo systemctl enable --now %[1]s.timer
# Check:
#   systemctl list-timers %[1]s.timer
#   sudo systemctl start %[1]s.service && journalctl -u %[1]s.service -n 20
`, name, backupDir)
	return nil
}
