package systemd

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// PasswdFile is where CheckUser looks users up. The binary is static
// (no cgo, no NSS), so /etc/passwd is read directly: a user known only
// to LDAP or another NSS source is given by its numeric UID instead.
var PasswdFile = "/etc/passwd"

// userName is what systemd accepts in User= in its strict mode.
var userName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,30}$`)

// CheckUser says whether User=name would start the service: systemd
// refuses to run a unit whose user does not exist.
func CheckUser(name string) error {
	if name == "" || strings.Trim(name, "0123456789") == "" {
		return nil // root, or a numeric UID, which systemd takes as is
	}
	if !userName.MatchString(name) {
		return fmt.Errorf("user %q: not a valid user name", name)
	}
	f, err := os.Open(PasswdFile)
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, _, ok := strings.Cut(sc.Text(), ":"); ok && n == name {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("user %q: read %s: %w", name, PasswdFile, err)
	}
	return fmt.Errorf("user %q does not exist (not in %s)", name, PasswdFile)
}
