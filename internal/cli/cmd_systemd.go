package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/config"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/host/passwd"
	"sqlite-backup/internal/host/systemd"
	"sqlite-backup/internal/output/metrics"
)

// SystemdCmd prints a service + timer pair for a scheduled backup that
// runs with exactly the settings `config` shows for the same command
// line. It installs nothing; the printed text says how to.
type SystemdCmd struct {
	Every   string `default:"daily" placeholder:"WHEN" help:"hourly, daily, weekly, monthly, or a systemd OnCalendar= expression such as \"*-*-* 02:30\" (default ${default})."`
	Name    string `placeholder:"UNIT" help:"Unit name without .service/.timer (default sqlite-backup-<db name>)."`
	User    string `placeholder:"USER" help:"Run as USER (default root); it must be able to read the database and write the backup directory."`
	Binary  string `default:"/usr/local/bin/sqlite-backup" placeholder:"PATH" help:"Path of the installed binary (default ${default})."`
	EnvFile string `name:"env-file" placeholder:"PATH" help:"The service's EnvironmentFile=, which holds secrets such as AWS_SECRET_ACCESS_KEY (root's, mode 0600; default /etc/sqlite-backup/<unit>.env with an s3:// remote). The tool never writes it."`
	Print   string `enum:"both,service,timer" default:"both" help:"Print both units with install instructions, or only the service or the timer, e.g. to pipe into sudo tee (${enum})."`

	// The backup's own flags: what they say goes into the unit.
	BackupSettings `embed:""`
}

var unitUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// systemdOnly are this command's own flags; notCarried say nothing about
// what a backup does. Every other flag is a setting of the backup.
var (
	systemdOnly = map[string]bool{"every": true, "name": true, "user": true, "binary": true, "env-file": true, "print": true}
	notCarried  = map[string]bool{"help": true, "version": true, "json": true, "config": true, "app-dir": true, "source": true}
)

// awsPlain are the AWS variables that change where and how an S3 remote
// is reached and hold no secret: a unit written from a shell that has
// them carries them. awsSecret never go into a unit.
var (
	awsPlain  = []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CA_BUNDLE", "AWS_SHARED_CREDENTIALS_FILE"}
	awsPaths  = map[string]bool{"AWS_CA_BUNDLE": true, "AWS_SHARED_CREDENTIALS_FILE": true}
	awsSecret = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
)

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
	user := c.User
	if user == "" {
		// Written out: with User= systemd sets HOME, where the defaults
		// (~/.ssh, ~/.aws) are looked for, as for `sudo sqlite-backup`.
		user = "root"
	}
	name := c.Name
	if name == "" {
		base := strings.TrimSuffix(filepath.Base(source), filepath.Ext(source))
		name = "sqlite-backup-" + strings.Trim(unitUnsafe.ReplaceAllString(base, "-"), "-")
	}
	if err := c.checkCarriable(); err != nil {
		return err
	}
	if _, err := c.IncrementalFlags.options(kctx, c.Backup, c.Method, len(c.Recipient)+len(c.RecipientsFile) > 0); err != nil {
		return err // a unit that would refuse to run every time
	}

	args, err := c.carried(kctx, g, source)
	if err != nil {
		return err
	}
	mf, err := metrics.Open(c.MetricsFile)
	if err != nil {
		return err
	}
	writable := []string{backupDir, filepath.Dir(source)}
	if mf != nil {
		writable = append(writable, filepath.Dir(mf.Path))
	}
	needed := append([]string{source, backupDir}, writable[2:]...)
	for _, group := range [][]string{c.RecipientsFile, c.Identity, {c.SSHKey, c.KnownHosts}} {
		for _, p := range group {
			if p != "" {
				abs, _ := filepath.Abs(p)
				needed = append(needed, abs)
			}
		}
	}
	if g.configFile != nil {
		abs, _ := filepath.Abs(g.configFile.Path)
		needed = append(needed, abs)
	}

	remotes, err := c.remoteNeeds(user)
	if err != nil {
		return err
	}
	var env []string
	envFile := c.EnvFile
	if remotes.s3 {
		for _, k := range awsPlain {
			v := os.Getenv(k)
			if v == "" {
				continue
			}
			if awsPaths[k] {
				v, _ = filepath.Abs(v)
				needed = append(needed, v)
			}
			env = append(env, k+"="+v)
		}
		if envFile == "" {
			envFile = "/etc/sqlite-backup/" + name + ".env"
		}
	}
	if envFile != "" {
		if err := checkEnvFile(envFile); err != nil {
			return err
		}
	}
	var sharedTmp []string
	seen := map[string]bool{}
	for _, p := range needed {
		if systemd.UnderTmp(p) && !seen[p] {
			seen[p] = true
			sharedTmp = append(sharedTmp, p)
		}
	}

	cmd := append([]string{c.Binary, "backup"}, args...)
	service, timer, err := systemd.Units(systemd.Spec{
		Name:            name,
		Description:     "sqlite-backup of " + source,
		Command:         cmd,
		WritablePaths:   writable,
		User:            user,
		Every:           c.Every,
		Environment:     env,
		EnvironmentFile: envFile,
		SharedTmp:       sharedTmp,
	})
	if err != nil {
		return usagef("sqlite-backup systemd --source /srv/app/app.db --every daily", "%v", err)
	}

	// The install commands are printed whole, ready to paste: this same
	// command with everything resolved, once per unit.
	self := append([]string{c.Binary, "systemd"}, args...)
	self = append(self, "--every", c.Every, "--name", name, "--user", user)
	if o := originOf(kctx, "binary"); o.Origin != config.FromDefault {
		self = append(self, "--binary", c.Binary)
	}
	if c.EnvFile != "" {
		self = append(self, "--env-file", envFile)
	}
	var install []string
	if exe, err := os.Executable(); err == nil && exe != c.Binary {
		install = append(install, fmt.Sprintf("sudo install -m 755 %s %s", shellQuote(exe), shellQuote(c.Binary)))
	}
	install = append(install, "sudo mkdir -p -m 700 "+shellQuote(backupDir))
	if envFile != "" {
		// touch, not install: an existing file keeps its secrets.
		install = append(install, fmt.Sprintf("sudo install -d -m 700 %[1]s && sudo touch %[2]s && sudo chown root:root %[2]s && sudo chmod 600 %[2]s && sudoedit %[2]s",
			shellQuote(filepath.Dir(envFile)), shellQuote(envFile)))
	}
	gen := quoteAll(self)
	install = append(install,
		fmt.Sprintf("%s --print service | sudo tee /etc/systemd/system/%s.service >/dev/null", gen, name),
		fmt.Sprintf("%s --print timer | sudo tee /etc/systemd/system/%s.timer >/dev/null", gen, name),
		fmt.Sprintf("sudo systemctl daemon-reload && sudo systemctl enable --now %s.timer", name),
	)
	check := quoteAll(append([]string{c.Binary, "config"}, args...))
	if g.JSON {
		g.addResult(struct {
			Name    string   `json:"name"`
			Service string   `json:"service"`
			Timer   string   `json:"timer"`
			Install []string `json:"install"`
			Check   string   `json:"check"`
		}{name, service, timer, install, check})
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
	if envFile != "" {
		fmt.Fprintf(w, "# %s holds the secrets, one VAR=value a line, e.g.:\n", envFile)
		for _, k := range awsSecret[:2] {
			fmt.Fprintf(w, "#   %s=…\n", k)
		}
	}
	fmt.Fprintf(w, `# Check the settings the timer runs with, the timer, and one run now:
#   %[2]s
#   systemctl list-timers %[1]s.timer
#   sudo systemctl start %[1]s.service && journalctl -u %[1]s.service -n 20
`, name, check)
	return nil
}

// checkCarriable refuses, before any unit is printed, what a timer could
// not do every night, and makes the checks a backup makes before it
// starts, so that no unit is written that fails each run.
func (c *SystemdCmd) checkCarriable() error {
	if c.Backup != "" {
		return usagef("sqlite-backup systemd --source /srv/app/app.db --backup-dir /backup",
			"--backup %q names one file, which the second run would refuse to overwrite; a timer needs --backup-dir", c.Backup)
	}
	if _, err := c.recipients(); err != nil {
		return err
	}
	if _, err := c.RetentionFlags.policy(); err != nil {
		return err
	}
	if c.ShrinkGuard < 0 || c.ShrinkGuard > 100 {
		return usagef("sqlite-backup systemd --source app.db --shrink-guard 50", "--shrink-guard %v: give a percentage from 0 (off) to 100", c.ShrinkGuard)
	}
	if _, err := backup.ParseMinFree(c.MinFree); err != nil {
		return usagef("sqlite-backup systemd --source app.db --min-free 2G", "%v", err)
	}
	if len(c.Identity) > 0 {
		// No terminal answers a timer: a passphrase-protected identity
		// would fail every run.
		_, err := encrypt.ParseIdentities(c.Identity, nil)
		if errors.Is(err, encrypt.ErrNoTerminal) {
			return usagef("give an identity file without a passphrase, readable only by the unit's user (chmod 600), or none",
				"%v: a timer has no terminal to ask on", err)
		}
		if err != nil {
			return usagef("sqlite-backup systemd --source app.db -i /etc/sqlite-backup/key.txt   (an age identity file or an SSH private key)", "%v", err)
		}
	}
	return nil
}

// carried is the unit's command line after "backup": the config file
// that was read (the unit reads it each run, so editing it changes the
// timer, and `config` keeps telling the truth), and every setting that
// came from this command line or a SQLITE_BACKUP_* variable, which the
// unit's run would not see, as a flag. Paths become absolute (a unit
// runs in /); a relative path in the config file is refused, as the unit
// would read it from / instead.
func (c *SystemdCmd) carried(kctx *kong.Context, g *Globals, source string) ([]string, error) {
	var args []string
	if g.configFile != nil {
		p, err := filepath.Abs(g.configFile.Path)
		if err != nil {
			return nil, err
		}
		args = append(args, "--config", p)
	}
	if originOf(kctx, "source").Origin != config.FromFile {
		args = append(args, "--source", source)
	}
	for _, f := range kctx.Flags() {
		isPath := f.PlaceHolder == "FILE" || f.PlaceHolder == "PATH" || f.PlaceHolder == "DIR"
		o := originOf(kctx, f.Name)
		if o.Origin == config.FromFile && (isPath || f.Name == "source") {
			var vs []string
			switch v := f.Target.Interface().(type) {
			case []string:
				vs = v
			case string:
				vs = []string{v}
			}
			for _, v := range vs {
				if v != "" && !filepath.IsAbs(v) {
					return nil, usagef(fmt.Sprintf("write %s = %q in %s", f.Name, mustAbs(v), g.configFile.Path),
						"%s %q in %s is relative: the unit runs in /, where it names another file", f.Name, v, g.configFile.Path)
				}
			}
		}
		if systemdOnly[f.Name] || notCarried[f.Name] || (o.Origin != config.FromFlag && o.Origin != config.FromEnv) {
			continue
		}
		flag := "--" + f.Name
		switch v := f.Target.Interface().(type) {
		case bool:
			if v {
				args = append(args, flag)
			} else {
				args = append(args, flag+"=false")
			}
		case []string:
			for _, x := range v {
				if isPath {
					x = mustAbs(x)
				}
				args = append(args, flag, x)
			}
		case string:
			if isPath && v != "" {
				v = mustAbs(v)
			}
			args = append(args, flag, v)
		default: // numbers and durations print as they parse
			args = append(args, flag, fmt.Sprint(v))
		}
	}
	return args, nil
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// remoteSet says what the unit's remotes need.
type remoteSet struct{ s3 bool }

// remoteNeeds checks that each remote can be reached from the unit: an
// SFTP remote without --ssh-key or --known-hosts uses the unit user's
// ~/.ssh, and a timer has no ssh-agent.
func (c *SystemdCmd) remoteNeeds(user string) (remoteSet, error) {
	var rs remoteSet
	u, known := passwd.Lookup(user)
	for _, r := range c.Remote {
		switch {
		case strings.HasPrefix(r, "s3://"):
			rs.s3 = true
		case strings.HasPrefix(r, "sftp://"):
			if !known || u.Home == "" {
				continue // a UID only NSS knows: nothing to look at here
			}
			if c.SSHKey == "" {
				keys := []string{filepath.Join(u.Home, ".ssh", "id_ed25519"), filepath.Join(u.Home, ".ssh", "id_rsa")}
				if missing(keys[0]) && missing(keys[1]) {
					return rs, usagef(fmt.Sprintf("give the key file: sqlite-backup systemd … --remote %s --ssh-key /etc/sqlite-backup/id_ed25519", shellQuote(r)),
						"--remote %s: the unit runs as %s without an ssh-agent, and %s has no key (%s, %s)", r, user, u.Home, keys[0], keys[1])
				}
			}
			if c.KnownHosts == "" {
				kh := filepath.Join(u.Home, ".ssh", "known_hosts")
				if missing(kh) {
					return rs, usagef(fmt.Sprintf("give the file that holds the server's key: sqlite-backup systemd … --remote %s --known-hosts FILE", shellQuote(r)),
						"--remote %s: the unit runs as %s, and %s does not exist", r, user, kh)
				}
			}
		}
	}
	return rs, nil
}

// missing is true only when p surely does not exist (another user's
// home this user may not read is not taken for missing).
func missing(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, fs.ErrNotExist)
}

// checkEnvFile refuses an environment file that exists and others may
// read, or that sets SQLITE_BACKUP_* variables: those would change the
// settings behind the back of `config`. A file that does not exist yet
// (or this user may not read) is the install steps' business.
func checkEnvFile(p string) error {
	if !filepath.IsAbs(p) {
		return usagef("sqlite-backup systemd --env-file /etc/sqlite-backup/app.env", "--env-file %q: systemd needs an absolute path", p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return usagef(fmt.Sprintf("sudo chown root:root %[1]s && sudo chmod 600 %[1]s", shellQuote(p)),
			"environment file %q is mode %04o: it holds secrets, so only its owner (root) may read it", p, fi.Mode().Perm())
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		if k, _, ok := strings.Cut(l, "="); ok && strings.HasPrefix(strings.TrimSpace(k), "SQLITE_BACKUP_") {
			return usagef("give settings as flags of this command or in the config file; keep only secrets in "+shellQuote(p),
				"environment file %q: line %d sets %s, which would change the unit's settings unseen by sqlite-backup config", p, line, strings.TrimSpace(k))
		}
	}
	return nil
}

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, a := range words {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
