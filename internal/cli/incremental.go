package cli

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/backup"
	"sqlite-backup/config"
	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/remote"
)

// IncrementalFlags are the backup's flags for incremental chains.
type IncrementalFlags struct {
	Incremental bool          `help:"Write only the pages that changed since the previous backup of the database, as one increment <db-file>.YYYYMMDD_HHMMSS.ltx; a full backup starts each chain (see --full-every). Needs --backup-dir and --method backup."`
	FullEvery   string        `default:"24,7d" placeholder:"N|DUR" help:"With --incremental: take a full backup after N increments, or when the chain's full is DUR old (e.g. 12h, 7d, 2w); both, comma-separated, whichever comes first (default ${default})."`
	CheckEvery  time.Duration `default:"24h" placeholder:"DUR" help:"With --incremental: check the chain's newest point materialized with integrity_check when its last check is DUR old (every full is checked; default ${default}; 0: every increment)."`
	Layout      string        `enum:"native,litestream" default:"native" help:"With --incremental: native writes the chain's own files only; litestream also keeps <backup-dir>/<db-file>.litestream, a Litestream v0.5 replica of every point (litestream restore -txid N file://DIR), pruned with the points; not with -r/-R. One of: ${enum}."`
}

// options turns the flags into backup.Incremental (nil without
// --incremental).
func (f IncrementalFlags) options(kctx *kong.Context, file, method string, encrypted bool) (*backup.Incremental, error) {
	if !f.Incremental {
		if f.Layout == chain.LayoutLitestream {
			return nil, usagef("sqlite-backup --source app.db --backup-dir /backup --incremental --layout litestream",
				"--layout litestream writes incremental chains as a Litestream replica; add --incremental")
		}
		if originOf(kctx, "full-every").Origin == config.FromFlag {
			return nil, usagef("sqlite-backup --source app.db --backup-dir /backup --incremental --full-every 24,7d",
				"--full-every applies to incremental backups; add --incremental")
		}
		if originOf(kctx, "check-every").Origin == config.FromFlag {
			return nil, usagef("sqlite-backup --source app.db --backup-dir /backup --incremental --check-every 24h",
				"--check-every applies to incremental backups; add --incremental")
		}
		return nil, nil
	}
	if file != "" {
		return nil, usagef("sqlite-backup --source app.db --backup-dir /backup --incremental",
			"--incremental writes points of a chain in a backup directory; --backup FILE names one file")
	}
	if method != "backup" {
		return nil, usagef("sqlite-backup --source app.db --backup-dir /backup --incremental --method backup",
			"--incremental needs --method backup: VACUUM INTO rewrites every page, so every increment would be a full")
	}
	if f.Layout == chain.LayoutLitestream && encrypted {
		return nil, usagef("sqlite-backup --source app.db --backup-dir /backup --incremental --layout litestream   (without -r/-R)",
			"--layout litestream writes files Litestream restores, which are never encrypted; drop -r/-R, or --layout")
	}
	if f.CheckEvery < 0 {
		return nil, usagef("sqlite-backup --incremental --check-every 24h", "--check-every %s: give a duration of 0 (every increment) or more", f.CheckEvery)
	}
	p, err := parseFullEvery(f.FullEvery)
	if err != nil {
		return nil, usagef("sqlite-backup --incremental --full-every 24,7d   (24 increments or 7 days, whichever first)", "--full-every %q: %v", f.FullEvery, err)
	}
	in := &backup.Incremental{Policy: p, CheckEvery: f.CheckEvery}
	if f.Layout == chain.LayoutLitestream {
		in.Layout = chain.LayoutLitestream
	}
	return in, nil
}

// parseFullEvery reads N, DUR or both: "24", "7d", "24,7d". A limit not
// given does not apply: "48" alone starts a new chain after 48
// increments however old its full is.
func parseFullEvery(s string) (chain.Policy, error) {
	// A limit not given is out of reach.
	p := chain.Policy{FullEvery: math.MaxInt32, FullEveryAge: 100 * 365 * 24 * time.Hour}
	count, age := false, false
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if n, err := strconv.Atoi(part); err == nil {
			if n < 1 || count {
				return p, fmt.Errorf("give one count of 1 or more increments")
			}
			p.FullEvery, count = n, true
			continue
		}
		d, err := parseDays(part)
		if err != nil || d <= 0 || age {
			return p, fmt.Errorf("give a count of increments (24), a duration (12h, 7d, 2w) or both (24,7d)")
		}
		p.FullEveryAge, age = d, true
	}
	return p, nil
}

// parseDays is time.ParseDuration with days (d) and weeks (w) as well.
func parseDays(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(n * float64(unit)), nil
		}
	}
	return time.ParseDuration(s)
}

// atFormats are the local-time forms --at takes besides RFC 3339.
var atFormats = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"}

// parseAt reads --at: "YYYY-MM-DD HH:MM[:SS]" in local time, or RFC 3339.
func parseAt(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, f := range atFormats {
		if t, err := time.ParseInLocation(f, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q: give a time as \"YYYY-MM-DD HH:MM[:SS]\" (local time) or RFC 3339 (2026-01-02T15:04:05Z)", s)
}

// pointAt resolves --at to the newest backup of the database (--source)
// in --backup-dir taken at or before it, or with --remote on that remote
// (the point is then URL/NAME), and says which on stderr.
func pointAt(ctx context.Context, kctx *kong.Context, g *Globals, at, cmd string, remotes []string, flags RemoteFlags) (*backup.Point, error) {
	t, err := parseAt(at)
	if err != nil {
		return nil, &atUsage{err}
	}
	src, err := findSource(kctx, g)
	if err != nil {
		return nil, err
	}
	var p *backup.Point
	if originOf(kctx, "remote").Origin == config.FromFlag && len(remotes) > 0 {
		if len(remotes) > 1 {
			return nil, &atUsage{fmt.Errorf("--at picks from one --remote; %d given", len(remotes))}
		}
		if p, err = remoteAt(ctx, remotes[0], flags, src.Path, t); err != nil {
			return nil, err
		}
	} else if p, err = backup.At(g.BackupDir, src.Path, t, nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(g.stderr(), "sqlite-backup: %s: the newest backup taken at or before %s is %s (taken %s)\n",
		cmd, t.Local().Format("2006-01-02 15:04:05 MST"), redact.Printable(remote.Redact(p.Path)), p.Taken.Local().Format("2006-01-02 15:04:05 MST"))
	return p, nil
}

// atUsage is a mistake in --at or what goes with it; the command says
// it with its own example (a usage error, exit 2).
type atUsage struct{ err error }

func (e *atUsage) Error() string { return e.err.Error() }

// remoteAt is backup.At on a remote: the point is URL/NAME.
func remoteAt(ctx context.Context, url string, flags RemoteFlags, source string, t time.Time) (*backup.Point, error) {
	abs, err := filepath.Abs(source)
	if err != nil {
		return nil, err
	}
	r, err := remote.Open(ctx, url, flags.options())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	best, oldest, taken, oldestTaken, err := remote.At(ctx, r, abs, t, nil)
	if err != nil {
		return nil, err
	}
	if best == nil {
		what := "no backup of " + abs + " on " + remote.Redact(url)
		if oldest != nil {
			what = fmt.Sprintf("the oldest backup of %s on %s, %s, was taken %s, after %s", abs, remote.Redact(url), oldest.Name,
				oldestTaken.Local().Format("2006-01-02 15:04:05 MST"), t.Local().Format("2006-01-02 15:04:05 MST"))
		}
		return nil, hint.Wrap(fmt.Errorf("%w: %s", backup.ErrNoPoint, what), "list the backups there: sqlite-backup list --remote %s", hint.Quote(remote.Redact(url)))
	}
	b := best.Backup
	b.Path = strings.TrimSuffix(url, "/") + "/" + best.Name
	return &backup.Point{Backup: b, Taken: taken}, nil
}
