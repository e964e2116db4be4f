// Package passwd reads /etc/passwd (and /etc/group) itself: the binary is
// static (no cgo, so no NSS and no os/user lookups that need it), and the
// tool only needs to name a file's owner and group and to check that a
// unit's user exists. A user known only to LDAP or another NSS source is
// not found here.
package passwd

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// File is the passwd file read; tests point it elsewhere.
var File = "/etc/passwd"

// GroupFile is the group file GroupName reads.
var GroupFile = "/etc/group"

// User is one line's name, UID, primary GID and home directory.
type User struct {
	Name string
	UID  int
	GID  int
	Home string
}

// Users reads every well-formed line of File.
func Users() ([]User, error) {
	f, err := os.Open(File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []User
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || fields[0] == "" {
			continue
		}
		uid, err := strconv.Atoi(fields[2])
		if err != nil {
			continue
		}
		u := User{Name: fields[0], UID: uid, GID: -1}
		if len(fields) > 3 {
			if gid, err := strconv.Atoi(fields[3]); err == nil {
				u.GID = gid
			}
		}
		if len(fields) > 5 {
			u.Home = fields[5]
		}
		out = append(out, u)
	}
	return out, sc.Err()
}

// Exists says whether name has a line in File.
func Exists(name string) (bool, error) {
	us, err := Users()
	for _, u := range us {
		if u.Name == name {
			return true, nil
		}
	}
	return false, err
}

// Name is uid's user name, or the number when File does not have it.
func Name(uid int) string {
	us, _ := Users()
	for _, u := range us {
		if u.UID == uid {
			return u.Name
		}
	}
	return strconv.Itoa(uid)
}

// Lookup finds a user by name or, for a number, by UID.
func Lookup(nameOrUID string) (User, bool) {
	us, _ := Users()
	uid, err := strconv.Atoi(nameOrUID)
	for _, u := range us {
		if u.Name == nameOrUID || (err == nil && u.UID == uid) {
			return u, true
		}
	}
	return User{}, false
}

// GroupName is gid's group name from GroupFile, or the number when the
// file does not have it.
func GroupName(gid int) string {
	f, err := os.Open(GroupFile)
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) >= 3 && fields[0] != "" && fields[2] == strconv.Itoa(gid) {
				return fields[0]
			}
		}
	}
	return strconv.Itoa(gid)
}
