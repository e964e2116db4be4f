package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDatabaseURL(t *testing.T) {
	const app = "/srv/app"
	tests := []struct {
		in, want, err string
	}{
		{in: "sqlite:///app.db", want: "/srv/app/app.db"},
		{in: "sqlite:///./data/app.db", want: "/srv/app/data/app.db"},
		{in: "sqlite:///../shared/app.db", want: "/srv/shared/app.db"},
		{in: "sqlite:////var/lib/app/app.db", want: "/var/lib/app/app.db"},
		{in: "sqlite+aiosqlite:///./data/app.db", want: "/srv/app/data/app.db"},
		{in: "sqlite+pysqlite:////abs/x.db", want: "/abs/x.db"},
		{in: "SQLite:///x.db", want: "/srv/app/x.db"},
		{in: "sqlite:///./data/app.db?check_same_thread=false", want: "/srv/app/data/app.db"},
		{in: "sqlite:///data/my%20app.db", want: "/srv/app/data/my app.db"},
		{in: "  sqlite:///app.db\n", want: "/srv/app/app.db"},
		{in: "file:data/app.db?mode=rwc", want: "/srv/app/data/app.db"},
		{in: "file:///abs/app.db", want: "/abs/app.db"},
		{in: "file://localhost/abs/app.db", want: "/abs/app.db"},
		{in: "file:/abs/app.db#frag", want: "/abs/app.db"},
		{in: "/abs/app.db", want: "/abs/app.db"},
		{in: "./app.db", want: "/srv/app/app.db"},
		{in: "data/app.db", want: "/srv/app/data/app.db"},
		{in: "", err: "empty database URL"},
		{in: "postgresql://u:pw@host/db", err: `not a SQLite database URL: "postgresql://u:xxxxx@host/db" is a postgresql URL`},
		{in: "postgresql+psycopg2://host/db", err: "is a postgresql URL"},
		{in: "mysql://host/db", err: "is a mysql URL"},
		{in: "sqlite://app.db", err: "malformed SQLite URL"},
		{in: "sqlite:app.db", err: "malformed SQLite URL"},
		{in: "sqlite://", err: "malformed SQLite URL"},
		{in: "sqlite:///", err: "in-memory database cannot be backed up"},
		{in: "sqlite:///:memory:", err: "in-memory database cannot be backed up"},
		{in: "file::memory:", err: "no database file"},
		{in: "file://otherhost/x.db", err: "remote host"},
		{in: "sqlite:///bad%zz.db", err: "malformed SQLite URL"},
	}
	for _, tt := range tests {
		got, err := ParseDatabaseURL(tt.in, app)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDatabaseURL(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDatabaseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseDatabaseURL("postgres://x/y", app); !errors.Is(err, ErrNotSQLite) {
		t.Errorf("postgres URL: error %v is not ErrNotSQLite", err)
	}
}

func TestParseDotEnv(t *testing.T) {
	in := "\ufeff# comment\n\n" +
		"export DATABASE_URL=sqlite:///./data/app.db\n" +
		"A='single # kept'\n" +
		`B="double \"q\" \\ x"` + "\n" +
		"C=value # trailing comment\n" +
		"D=\n" +
		"E = spaced \n" +
		"F=a#b\n"
	got, err := ParseDotEnv(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DATABASE_URL": "sqlite:///./data/app.db",
		"A":            "single # kept",
		"B":            `double "q" \ x`,
		"C":            "value",
		"D":            "",
		"E":            "spaced",
		"F":            "a#b",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d keys, want %d: %v", len(got), len(want), got)
	}

	for _, bad := range []string{"NOEQUALS\n", "A='unterminated\n", "BAD KEY=1\n", "=v\n"} {
		if _, err := ParseDotEnv(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseDotEnv(%q) error = %v, want a line-1 error", bad, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	in := `# settings
source = "/srv/app/app.db"  # the database
backup_dir = '/backup'
quick = true
keep = 1_0
tags = ["a", 'b # c', "d,e"]
note = "has # hash"
`
	f, err := ParseFile("x.toml", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	check := func(key string, want any) {
		t.Helper()
		s, ok := f.Settings[key]
		if !ok {
			t.Fatalf("missing %s", key)
		}
		if got, ok := s.Value.([]string); ok {
			if strings.Join(got, "|") != strings.Join(want.([]string), "|") {
				t.Errorf("%s = %q, want %q", key, got, want)
			}
			return
		}
		if s.Value != want {
			t.Errorf("%s = %#v, want %#v", key, s.Value, want)
		}
	}
	check("source", "/srv/app/app.db")
	check("backup-dir", "/backup")
	check("quick", true)
	check("keep", int64(10))
	check("tags", []string{"a", "b # c", "d,e"})
	check("note", "has # hash")
	if f.Settings["quick"].Line != 4 {
		t.Errorf("quick on line %d, want 4", f.Settings["quick"].Line)
	}

	for _, tt := range []struct{ in, err string }{
		{"[section]\n", "line 1: sections are not supported"},
		{"x\n", "line 1: expected key = value"},
		{"a = \n", "line 1: a: missing value"},
		{"a = yes\n", "line 1: a: cannot read yes (strings need quotes)"},
		{"a = \"open\n", "line 1: a: bad string"},
		{"a = [1, 2]\n", "arrays may only hold strings"},
		{"a = 1\nb = 2\na = 3\n", "line 3: a is already set on line 1"},
	} {
		_, err := ParseFile("bad.toml", strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), `config "bad.toml"`) {
			t.Errorf("ParseFile(%q) error = %v, want %q", tt.in, err, tt.err)
		}
	}
}

func TestFindSourceOrder(t *testing.T) {
	app := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	l := Lookup{AppDir: app, Getenv: getenv}

	// Nothing: the error lists every place, and carries the hint.
	_, err := FindSource(l)
	if err == nil {
		t.Fatal("no error with nothing configured")
	}
	for _, want := range []string{"--source flag: not given", "SQLITE_BACKUP_SOURCE: not set", "DATABASE_URL in the environment: not set", filepath.Join(app, ".env") + ": no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	// .env of the app.
	if err := os.WriteFile(filepath.Join(app, ".env"), []byte("DATABASE_URL=sqlite:///./data/app.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := FindSource(l)
	if err != nil || s.Path != filepath.Join(app, "data/app.db") || s.Origin != FromAppEnv {
		t.Fatalf("from .env: %+v, %v", s, err)
	}

	// The environment beats .env.
	env["DATABASE_URL"] = "sqlite:////env/app.db"
	s, err = FindSource(l)
	if err != nil || s.Path != "/env/app.db" || s.Origin != FromEnv {
		t.Fatalf("from env: %+v, %v", s, err)
	}

	// What kong resolved (flag, SQLITE_BACKUP_SOURCE or config file) beats both.
	l.Source, l.SourceOrigin, l.SourceDetail = "/flag/app.db", FromFlag, "--source"
	s, err = FindSource(l)
	if err != nil || s.Path != "/flag/app.db" || s.Origin != FromFlag {
		t.Fatalf("from flag: %+v, %v", s, err)
	}

	// A .env naming postgres is a clear error, not a silent fall-through.
	l.Source = ""
	delete(env, "DATABASE_URL")
	if err := os.WriteFile(filepath.Join(app, ".env"), []byte("DATABASE_URL=postgresql://h/db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FindSource(l); err == nil || !strings.Contains(err.Error(), "is a postgresql URL") {
		t.Fatalf("postgres in .env: %v", err)
	}
}
