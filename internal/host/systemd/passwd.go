package systemd

import (
	"fmt"
	"regexp"
	"strings"

	"sqlite-backup/internal/host/passwd"
)

// userName is what systemd accepts in User= in its strict mode.
var userName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,30}$`)

// CheckUser says whether User=name would start the service: systemd
// refuses to run a unit whose user does not exist. A user known only to
// LDAP or another NSS source is given by its numeric UID instead, as the
// static binary reads /etc/passwd itself.
func CheckUser(name string) error {
	if name == "" || strings.Trim(name, "0123456789") == "" {
		return nil // root, or a numeric UID, which systemd takes as is
	}
	if !userName.MatchString(name) {
		return fmt.Errorf("user %q: not a valid user name", name)
	}
	ok, err := passwd.Exists(name)
	switch {
	case ok:
		return nil
	case err != nil:
		return fmt.Errorf("user %q: %w", name, err)
	}
	return fmt.Errorf("user %q does not exist (not in %s)", name, passwd.File)
}
