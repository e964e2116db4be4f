package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	sqlite3 "modernc.org/sqlite/lib"
)

// Set by the release build: -ldflags "-X sqlite-backup/internal/cli.version=… -X sqlite-backup/internal/cli.commit=… -X sqlite-backup/internal/cli.date=…".
var (
	version = ""
	commit  = ""
	date    = ""
)

// VersionCmd prints what an operator needs in a bug report.
type VersionCmd struct{}

type versionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Date    string `json:"date,omitempty"`
	Go      string `json:"go"`
	SQLite  string `json:"sqlite"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func buildInfo() versionInfo {
	v := versionInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version(),
		SQLite: sqlite3.SQLITE_VERSION, OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.time" && v.Date == "":
				v.Date = s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	return v
}

func versionLine() string {
	v := buildInfo()
	build := ""
	if v.Commit != "" {
		build += "commit " + v.Commit + ", "
	}
	if v.Date != "" {
		build += "built " + v.Date + ", "
	}
	return fmt.Sprintf("sqlite-backup %s (%sgo %s, sqlite %s, %s/%s)", v.Version, build, v.Go, v.SQLite, v.OS, v.Arch)
}

func (c *VersionCmd) Run(g *Globals) error {
	v := buildInfo()
	if g.JSON {
		g.addResult(v)
		return nil
	}
	fmt.Fprintf(g.stdout, "sqlite-backup %s\n", v.Version)
	if v.Commit != "" {
		fmt.Fprintf(g.stdout, "commit:  %s\n", v.Commit)
	}
	if v.Date != "" {
		fmt.Fprintf(g.stdout, "built:   %s\n", v.Date)
	}
	fmt.Fprintf(g.stdout, "go:      %s\nsqlite:  %s (modernc.org/sqlite, pure Go)\nplatform: %s/%s\n", v.Go, v.SQLite, v.OS, v.Arch)
	return nil
}
