package config

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseDatabaseURL: any DATABASE_URL value yields either a clean
// absolute path or an error, never a panic.
func FuzzParseDatabaseURL(f *testing.F) {
	for _, s := range []string{
		"sqlite:///app.db", "sqlite:////srv/app/app.db", "sqlite+aiosqlite:///./data/app.db?check_same_thread=false",
		"sqlite:///:memory:", "sqlite://", "sqlite:", "sqlite://host/app.db", "file:data/app.db?mode=rwc",
		"file:///abs/app.db", "file://localhost/abs/app.db", "file://remote/x.db", "file:", "file:%zz",
		"postgres://u:p@h/db", "mysql+pymysql://root@localhost/app", "/abs/app.db", "./app.db", "app.db",
		"C:\\data\\app.db", "  sqlite:///spaced.db  ", "sqlite:///a%20b.db", "sqlite:///%", "", ":", "::", "a:b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := ParseDatabaseURL(raw, "/srv/app")
		if err != nil {
			if p != "" {
				t.Errorf("%q: error %v with a path %q", raw, err, p)
			}
			return
		}
		if !filepath.IsAbs(p) || p != filepath.Clean(p) {
			t.Errorf("%q => %q: not a clean absolute path", raw, p)
		}
	})
}

// FuzzRedactsPassword: an error about a URL with user:password@ never
// shows the password, whatever the scheme and whatever follows.
func FuzzRedactsPassword(f *testing.F) {
	f.Add("postgres", "app", "s3cretpw", "db.internal:5432/app")
	f.Add("postgresql+psycopg2", "app", "s3cretpw", "db/app?sslmode=require")
	f.Add("mysql", "root", "hunter22", "localhost/%zz")
	f.Add("sqlite", "u", "passw0rd", "host/app.db")
	f.Add("redis", "", "tok3n!!", "cache:6379/0")
	f.Fuzz(func(t *testing.T, scheme, user, pass, rest string) {
		if len(pass) < 4 || strings.ContainsAny(pass, "@/?#\\") || strings.ContainsAny(user, ":@/?#\\") ||
			strings.Contains(rest, pass) || strings.Contains(scheme, pass) || strings.Contains(user, pass) {
			return
		}
		raw := scheme + "://" + user + ":" + pass + "@" + rest
		if strconv.Quote(raw) != `"`+raw+`"` {
			return // %q escapes would make new text that may spell pass
		}
		// The leak is the user-info spelled out; the bare password may
		// also occur by chance in the message's own words (" 000 URL").
		_, err := ParseDatabaseURL(raw, "/srv/app")
		if err != nil && strings.Contains(err.Error(), ":"+pass+"@") {
			t.Errorf("%q: the error shows the password: %v", raw, err)
		}
	})
}

// FuzzParseDotEnv and FuzzParseFile: any bytes give a result or an error
// naming a line, never a panic.
func FuzzParseDotEnv(f *testing.F) {
	f.Add("export DATABASE_URL=\"sqlite:///app.db\" # main\n# c\nA='x#y'\nB=\"a\\\"b\"\n")
	f.Add("\ufeffDATABASE_URL=x\n=\nA B=1\nC='unterminated\n")
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseDotEnv(strings.NewReader(s))
		if err != nil {
			return
		}
		for k := range env {
			if k == "" || strings.ContainsAny(k, " \t") {
				t.Errorf("%q: key %q", s, k)
			}
		}
	})
}

func FuzzParseFile(f *testing.F) {
	f.Add("# cfg\nsource = \"/srv/app.db\"\nbusy_timeout = \"30s\"\nkeep = 7\nquick = true\nverify = [\"a\", \"b\"]\n")
	f.Add("[section]\nx = \nkey = 'single'\ndup = 1\ndup = 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		cf, err := ParseFile("c.toml", bytes.NewReader([]byte(s)))
		if err != nil {
			if !strings.Contains(err.Error(), "c.toml") {
				t.Errorf("%q: error does not name the file: %v", s, err)
			}
			return
		}
		for k, st := range cf.Settings {
			if k == "" || st.Line < 1 {
				t.Errorf("%q: setting %q on line %d", s, k, st.Line)
			}
		}
	})
}
