package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sqlite-backup/internal/output/hint"
)

// Origin names where a setting came from, for `sqlite-backup config`.
type Origin string

const (
	FromFlag    Origin = "flag"
	FromEnv     Origin = "env"
	FromFile    Origin = "config file"
	FromAppEnv  Origin = "app .env"
	FromDefault Origin = "default"
	FromNone    Origin = "not set"
)

// Source is the database found, and how.
type Source struct {
	Path   string `json:"path"`
	Origin Origin `json:"origin"`
	// Detail says exactly where: "--source", "SQLITE_BACKUP_SOURCE",
	// "/etc/sqlite-backup.toml", "DATABASE_URL", "/srv/app/.env".
	Detail string `json:"detail"`
}

// Lookup describes what the CLI already resolved for --source (flag, env
// or config file, in kong's order) and where to look beyond it.
type Lookup struct {
	Source       string // value of --source after flag/env/config file
	SourceOrigin Origin // where Source came from
	SourceDetail string
	ConfigFile   string // config file path that was consulted ("" if none)
	ConfigErr    string // why no config file was read, for the error list
	AppDir       string
	Getenv       func(string) string
}

// FindSource applies the documented order: --source > SQLITE_BACKUP_SOURCE
// > config file > DATABASE_URL in the environment > DATABASE_URL in the
// app directory's .env. When nothing is found the error lists every place
// that was looked at.
func FindSource(l Lookup) (Source, error) {
	if l.Getenv == nil {
		l.Getenv = os.Getenv
	}
	if l.AppDir == "" {
		l.AppDir = "."
	}
	appDir, err := filepath.Abs(l.AppDir)
	if err != nil {
		return Source{}, fmt.Errorf("app dir %q: %w", l.AppDir, err)
	}
	if l.Source != "" {
		cwd, err := os.Getwd()
		if err != nil {
			return Source{}, err
		}
		p, err := ParseDatabaseURL(l.Source, cwd)
		if err != nil {
			return Source{}, fmt.Errorf("source from %s: %w", l.SourceDetail, err)
		}
		return Source{Path: p, Origin: l.SourceOrigin, Detail: l.SourceDetail}, nil
	}
	tried := []string{"--source flag: not given", "SQLITE_BACKUP_SOURCE: not set"}
	switch {
	case l.ConfigFile != "":
		tried = append(tried, fmt.Sprintf("config file %s: no source setting", l.ConfigFile))
	case l.ConfigErr != "":
		tried = append(tried, "config file: "+l.ConfigErr)
	}

	if u := l.Getenv("DATABASE_URL"); u != "" {
		p, err := ParseDatabaseURL(u, appDir)
		if err != nil {
			return Source{}, hint.Wrap(fmt.Errorf("DATABASE_URL in the environment: %w", err), "name the SQLite file instead: sqlite-backup --source /path/to/app.db")
		}
		return Source{Path: p, Origin: FromEnv, Detail: "DATABASE_URL"}, nil
	}
	tried = append(tried, "DATABASE_URL in the environment: not set")

	envPath := filepath.Join(appDir, ".env")
	data, err := os.ReadFile(envPath)
	switch {
	case err == nil:
		vars, perr := ParseDotEnv(bytes.NewReader(data))
		if perr != nil {
			return Source{}, fmt.Errorf("read %s: %w", envPath, perr)
		}
		if u, ok := vars["DATABASE_URL"]; ok && u != "" {
			p, err := ParseDatabaseURL(u, appDir)
			if err != nil {
				return Source{}, hint.Wrap(fmt.Errorf("DATABASE_URL in %s: %w", envPath, err), "name the SQLite file instead: sqlite-backup --source /path/to/app.db")
			}
			return Source{Path: p, Origin: FromAppEnv, Detail: envPath}, nil
		}
		tried = append(tried, envPath+": no DATABASE_URL")
	case errors.Is(err, fs.ErrNotExist):
		tried = append(tried, envPath+": no such file")
	default:
		tried = append(tried, fmt.Sprintf("%s: %v", envPath, err))
	}
	return Source{Origin: FromNone}, hint.Wrap(
		fmt.Errorf("no source database found; looked at:\n  %s", strings.Join(tried, "\n  ")),
		"sqlite-backup --source /path/to/app.db")
}
