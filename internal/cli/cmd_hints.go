package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"sqlite-backup/internal/host/passwd"
	"sqlite-backup/internal/output/hint"
)

// backupHint gives a failed backup of src the way out the packages
// cannot know: who owns the database, what is inside a directory given
// as --source, who may write the backup directory. An error that has a
// hint already keeps it.
func backupHint(err error, src, dir, file string) error {
	if err == nil || hint.Of(err) != "" {
		return err
	}
	to := "--backup-dir " + shellQuote(dir)
	if file != "" {
		to = "--backup " + shellQuote(file)
	}
	msg := err.Error()
	fi, statErr := os.Stat(src)
	switch {
	case statErr == nil && fi.IsDir():
		if db := findDB(src); db != "" {
			return hint.Wrap(err, "sqlite-backup --source %s %s", shellQuote(db), to)
		}
		return hint.Wrap(err, "--source is the database file, not its directory: ls %s; sqlite-backup --source %s %s", shellQuote(src), shellQuote(filepath.Join(src, "app.db")), to)
	case strings.HasPrefix(msg, "open source") && errors.Is(err, fs.ErrPermission) && statErr == nil:
		owner, me := ownerOf(fi), passwd.Name(os.Geteuid())
		err = fmt.Errorf("%w (owned by %s, mode %04o; this runs as %s)", err, owner, fi.Mode().Perm(), me)
		return hint.Wrap(err, "run it as the database's owner, with a backup directory that user may write: sudo -u %s sqlite-backup --source %s %s", shellQuote(owner), shellQuote(src), to)
	case errors.Is(err, fs.ErrPermission) && (strings.Contains(msg, "lock") || strings.Contains(msg, "backup dir")):
		me := passwd.Name(os.Geteuid())
		d := dir
		if file != "" {
			d = filepath.Dir(file)
		}
		h := fmt.Sprintf("user %s may not write %s: sudo install -d -m 700 -o %s %s", me, d, shellQuote(me), shellQuote(d))
		if home := writableHome(); home != "" {
			h += fmt.Sprintf(" (or choose one it may write: sqlite-backup --source %s --backup-dir %s)", shellQuote(src), shellQuote(filepath.Join(home, "backups")))
		}
		return hint.Wrap(err, "%s", h)
	case file != "" && errors.Is(err, fs.ErrNotExist) && !exists(filepath.Dir(file)):
		return hint.Wrap(err, "--backup does not create directories: mkdir -p %s && sqlite-backup --source %s --backup %s", shellQuote(filepath.Dir(file)), shellQuote(src), shellQuote(file))
	}
	return err
}

// restoreHint: --to into a directory that does not exist.
func restoreHint(err error, backupFile, to string) error {
	if err == nil || hint.Of(err) != "" {
		return err
	}
	if d := filepath.Dir(to); !exists(d) {
		return hint.Wrap(err, "restore does not create directories: mkdir -p %s && sqlite-backup restore %s --to %s", shellQuote(d), shellQuote(backupFile), shellQuote(to))
	}
	return err
}

// writableHome is this user's home directory from /etc/passwd when the
// user may write it, else "": a service account's home is often
// /nonexistent or root's, where ~/backups would fail again.
func writableHome() string {
	u, ok := passwd.Lookup(strconv.Itoa(os.Geteuid()))
	if !ok || !filepath.IsAbs(u.Home) {
		return ""
	}
	if fi, err := os.Stat(u.Home); err != nil || !fi.IsDir() || syscall.Access(u.Home, 2 /* W_OK */) != nil {
		return ""
	}
	return u.Home
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// findDB is the first file in dir that looks like a database by name.
func findDB(dir string) string {
	for _, pat := range []string{"*.db", "*.sqlite", "*.sqlite3"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p
			}
		}
	}
	return ""
}

func ownerOf(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return passwd.Name(int(st.Uid))
	}
	return "its owner"
}
