package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"

	"sqlite-backup/config"
	"sqlite-backup/internal/output/hint"
)

// findSources resolves every database given: each --source value (or
// config-file entry, where a glob such as "/srv/*/data/app.db" expands to
// the files that match), or, with none, the one found through
// DATABASE_URL and the app's .env.
func findSources(kctx *kong.Context, g *Globals) ([]config.Source, error) {
	o := originOf(kctx, "source")
	base := config.Lookup{
		SourceOrigin: o.Origin,
		SourceDetail: o.Detail,
		ConfigErr:    g.configErr,
		AppDir:       g.AppDir,
		Getenv:       os.Getenv,
	}
	if g.configFile != nil {
		base.ConfigFile = g.configFile.Path
	}
	values := g.Source
	if len(values) == 0 {
		values = []string{""}
	}
	var out []config.Source
	seen := map[string]bool{}
	for _, v := range values {
		expanded := []string{v}
		if o.Origin == config.FromFile && strings.ContainsAny(v, "*?[") {
			if _, err := os.Stat(v); err != nil {
				m, err := filepath.Glob(v)
				if err != nil {
					return nil, usagef(`source = "/srv/*/data/app.db"`, "source %q in %s: %v", v, base.ConfigFile, err)
				}
				if len(m) == 0 {
					return nil, hint.Wrap(fmt.Errorf("source %q in %s matches no file", v, base.ConfigFile), "check the pattern: ls %s", hint.QuoteGlob(v))
				}
				expanded = m
			}
		}
		for _, e := range expanded {
			l := base
			l.Source = e
			src, err := config.FindSource(l)
			if err != nil {
				return nil, err
			}
			if seen[src.Path] {
				continue
			}
			seen[src.Path] = true
			out = append(out, src)
		}
	}
	// Backups are named after the database's file name: two databases
	// called app.db would share names and one's retention would prune
	// the other's backups.
	byName := map[string]string{}
	for _, s := range out {
		n := filepath.Base(s.Path)
		if prev, ok := byName[n]; ok {
			return nil, usagef("run them with different --backup-dir values", "databases %q and %q have the same file name %q; their backups would share names in one --backup-dir", prev, s.Path, n)
		}
		byName[n] = s.Path
	}
	return out, nil
}

// severalFailed ends a run over several databases or files in which some
// failed, after each failure was reported. It unwraps to the first
// failure so the exit code follows it (3 for a failed verification).
type severalFailed struct {
	what          string
	failed, total int
	first         error
}

func (e *severalFailed) Error() string {
	return fmt.Sprintf("%d of %d %s failed", e.failed, e.total, e.what)
}
func (e *severalFailed) Unwrap() error { return e.first }
