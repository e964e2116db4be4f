// Package config finds the database to back up and reads the tool's own
// settings. It knows the spellings applications really use for a SQLite
// location (SQLAlchemy URLs, file: URIs, plain paths), the .env files
// they keep them in, and a small TOML config file for the tool itself.
// Everything here parses strings and readers so it can be table-tested;
// nothing prints.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// ErrNotSQLite says a database URL names another kind of database.
var ErrNotSQLite = errors.New("not a SQLite database URL")

// ParseDatabaseURL turns a DATABASE_URL value into a file path. Relative
// paths are resolved against appDir, the way a SQLAlchemy app resolves
// sqlite:///./data/app.db from its project root.
//
// Accepted forms:
//
//	sqlite:///relative.db            relative to appDir
//	sqlite:///./data/app.db          relative to appDir
//	sqlite:////abs/path.db           absolute
//	sqlite+aiosqlite:///…, sqlite+pysqlite:///…   any sqlite+driver
//	…?check_same_thread=false        query dropped
//	file:data/app.db?mode=rwc, file:///abs/app.db
//	/abs/app.db, ./app.db, app.db    plain paths
func ParseDatabaseURL(raw, appDir string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errors.New("empty database URL")
	}
	resolve := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(appDir, p)
	}
	scheme, rest, hasScheme := strings.Cut(s, ":")
	if !hasScheme || strings.ContainsAny(scheme, `/\. `) || len(scheme) < 2 {
		// A plain path (a one-letter "scheme" would be a Windows drive).
		return resolve(s), nil
	}
	lower := strings.ToLower(scheme)
	switch {
	case lower == "file":
		return parseFileURI(rest, resolve)
	case lower == "sqlite" || strings.HasPrefix(lower, "sqlite+"):
		return parseSQLAlchemy(s, rest, resolve)
	default:
		kind := lower
		if i := strings.IndexByte(kind, '+'); i > 0 {
			kind = kind[:i]
		}
		return "", fmt.Errorf("%w: %q is a %s URL; this tool backs up SQLite files only", ErrNotSQLite, redact(s), kind)
	}
}

func parseSQLAlchemy(whole, rest string, resolve func(string) string) (string, error) {
	whole = redact(whole)
	rest, _, _ = strings.Cut(rest, "?")
	if !strings.HasPrefix(rest, "//") {
		return "", fmt.Errorf("malformed SQLite URL %q: expected sqlite:///path/to/app.db", whole)
	}
	rest = rest[2:]
	// sqlite:///x is "sqlite://" + host "" + "/x": the path is what
	// follows the third slash, relative unless a fourth one follows.
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host != "" {
		return "", fmt.Errorf("malformed SQLite URL %q: expected sqlite:///relative.db or sqlite:////abs/path.db", whole)
	}
	if path == "" {
		return "", fmt.Errorf("malformed SQLite URL %q: no database file (an in-memory database cannot be backed up)", whole)
	}
	if path == ":memory:" {
		return "", fmt.Errorf("malformed SQLite URL %q: an in-memory database cannot be backed up", whole)
	}
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return "", fmt.Errorf("malformed SQLite URL %q: %v", whole, err)
	}
	return resolve(unescaped), nil
}

func parseFileURI(rest string, resolve func(string) string) (string, error) {
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "#")
	if strings.HasPrefix(rest, "//") {
		host, path, _ := strings.Cut(rest[2:], "/")
		if host != "" && host != "localhost" {
			return "", fmt.Errorf("malformed file URI %q: remote host %q", "file:"+rest, host)
		}
		rest = "/" + path
	}
	p, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("malformed file URI %q: %v", "file:"+rest, err)
	}
	if p == "" || p == ":memory:" {
		return "", fmt.Errorf("malformed file URI %q: no database file", "file:"+rest)
	}
	return resolve(p), nil
}

// redact hides a password in a URL before it is printed. It works on
// the string rather than through url.Parse, which fails on a bad escape
// anywhere in the URL and would then leave the password in the message.
func redact(s string) string {
	// Every "://" may start an authority: an odd value such as
	// "x://://user:pw@host" must not show pw either.
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		auth := s
		if j := strings.IndexAny(auth, "/?#"); j >= 0 {
			auth = auth[:j]
		}
		at := strings.LastIndexByte(auth, '@')
		if at < 0 {
			continue
		}
		if c := strings.IndexByte(auth[:at], ':'); c >= 0 {
			b.WriteString(s[:c+1] + "xxxxx")
			s = s[at:]
		}
	}
}
