// Package systemd writes a oneshot service and a timer that run
// sqlite-backup on a schedule. It only produces text: installing units is
// the operator's decision (and needs root), so nothing here touches the
// system.
package systemd

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Spec describes one scheduled backup.
type Spec struct {
	Name        string   // unit name without suffix, e.g. sqlite-backup-app
	Description string   // what is backed up, for systemctl status
	Command     []string // ExecStart= words; Command[0] is an absolute path
	// WritablePaths are the only paths the service may write to: the
	// backup directory, the database's directory (readers of a WAL
	// database write its -shm file) and the metrics file's directory.
	WritablePaths []string
	User          string // run as this user; empty for root
	Every         string // hourly, daily, weekly or an OnCalendar= expression
	// Environment holds KEY=VALUE settings the command needs that are no
	// secret (an S3 endpoint, a region): they are written in the unit.
	Environment []string
	// EnvironmentFile, when set, is read by systemd (as root, before it
	// drops to User=) for the secrets, which never go into the unit.
	EnvironmentFile string
	// SharedTmp lists paths under /tmp or /var/tmp the command needs: a
	// private /tmp would hide them, so PrivateTmp= is off and /tmp stays
	// writable for temp files, as the private one was.
	SharedTmp []string
}

// UnderTmp says whether p lies in /tmp or /var/tmp, which PrivateTmp=yes
// replaces with empty private directories.
func UnderTmp(p string) bool {
	p = filepath.Clean(p)
	for _, t := range []string{"/tmp", "/var/tmp"} {
		if p == t || strings.HasPrefix(p, t+"/") {
			return true
		}
	}
	return false
}

// Schedules with a name; anything else is passed to OnCalendar= as is.
var schedules = map[string]string{
	// The randomized delay spreads the runs of many servers sharing one
	// disk or network, without letting a run slip into the next period.
	"hourly":  "5min",
	"daily":   "30min",
	"weekly":  "1h",
	"monthly": "1h",
}

var unitName = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// Units returns the text of NAME.service and NAME.timer.
func Units(s Spec) (service, timer string, err error) {
	if !unitName.MatchString(s.Name) || strings.HasPrefix(s.Name, "-") {
		return "", "", fmt.Errorf("unit name %q: only letters, digits and :_.\\- are allowed", s.Name)
	}
	if len(s.Command) == 0 || !filepath.IsAbs(s.Command[0]) {
		return "", "", errors.New("the command must start with an absolute path")
	}
	every := strings.TrimSpace(s.Every)
	if every == "" || strings.ContainsAny(every, "\n\r") {
		return "", "", fmt.Errorf("schedule %q: give hourly, daily, weekly, monthly or an OnCalendar= expression", s.Every)
	}

	var sv strings.Builder
	fmt.Fprintf(&sv, "[Unit]\nDescription=%s\n", specifier(oneLine(s.Description)))
	sv.WriteString("Wants=local-fs.target\nAfter=local-fs.target\n\n")
	sv.WriteString("[Service]\nType=oneshot\n")
	if s.User != "" {
		fmt.Fprintf(&sv, "User=%s\n", specifier(s.User))
	}
	if s.EnvironmentFile != "" {
		if !filepath.IsAbs(s.EnvironmentFile) || !plainWord.MatchString(s.EnvironmentFile) {
			return "", "", fmt.Errorf("environment file %q: give an absolute path of letters, digits and _@%%+=:,./-", s.EnvironmentFile)
		}
		sv.WriteString("# Secrets come from this file (root's, mode 0600), never from the unit.\n")
		fmt.Fprintf(&sv, "EnvironmentFile=%s\n", specifier(s.EnvironmentFile))
	}
	for _, kv := range s.Environment {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(kv, "\n\r") {
			return "", "", fmt.Errorf("environment %q: give one KEY=VALUE line", kv)
		}
		// Environment= expands % specifiers but not $: only % is escaped.
		fmt.Fprintf(&sv, "Environment=%s\n", quoteWord(kv))
	}
	fmt.Fprintf(&sv, "ExecStart=%s\n", CommandLine(s.Command))
	sv.WriteString("# Stay out of the application's way.\nNice=10\nIOSchedulingClass=idle\n")
	sv.WriteString("# Read-only view of the system except where the backup writes.\n")
	sv.WriteString("ProtectSystem=strict\n")
	writable := s.WritablePaths
	if len(s.SharedTmp) > 0 {
		fmt.Fprintf(&sv, "# PrivateTmp= is off: a private /tmp would hide %s.\nPrivateTmp=no\n", oneLine(strings.Join(s.SharedTmp, ", ")))
		writable = append(append([]string{}, writable...), "/tmp")
	} else {
		sv.WriteString("PrivateTmp=yes\n")
	}
	sv.WriteString("NoNewPrivileges=yes\nPrivateDevices=yes\nProtectKernelTunables=yes\nProtectControlGroups=yes\nRestrictSUIDSGID=yes\n")
	var paths []string
	seen := map[string]bool{}
	for _, p := range writable {
		if p = filepath.Clean(p); !seen[p] {
			seen[p] = true
			paths = append(paths, quoteWord(p))
		}
	}
	if len(paths) > 0 {
		fmt.Fprintf(&sv, "ReadWritePaths=%s\n", strings.Join(paths, " "))
	}

	var tm strings.Builder
	fmt.Fprintf(&tm, "[Unit]\nDescription=%s (%s)\n\n", specifier(oneLine(s.Description)), specifier(every))
	fmt.Fprintf(&tm, "[Timer]\nOnCalendar=%s\n", specifier(every))
	if d := schedules[every]; d != "" {
		fmt.Fprintf(&tm, "RandomizedDelaySec=%s\n", d)
	}
	// Persistent: a run missed while the machine was off happens at boot.
	tm.WriteString("Persistent=true\n\n[Install]\nWantedBy=timers.target\n")
	return sv.String(), tm.String(), nil
}

// CommandLine quotes words for ExecStart=: systemd splits on spaces,
// understands double quotes with C escapes, expands $VAR and %
// specifiers; every word comes through literally.
func CommandLine(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strings.ReplaceAll(quoteWord(w), "$", "$$")
	}
	return strings.Join(q, " ")
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// quoteWord quotes one word where needed and escapes % specifiers.
func quoteWord(w string) string {
	if plainWord.MatchString(w) {
		return specifier(w)
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range w {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return specifier(b.String())
}

func specifier(s string) string { return strings.ReplaceAll(s, "%", "%%") }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
