package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"github.com/superfly/ltx"

	"sqlite-backup/backup"
	"sqlite-backup/config"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/litestream"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/internal/output/size"
	"sqlite-backup/internal/retention"
	"sqlite-backup/remote"
)

// ListCmd shows the backups in the backup directory with what their
// sidecars say; with --verify it checks each one as verify does.
type ListCmd struct {
	Replica string   `arg:"" optional:"" name:"replica" help:"A Litestream replica to list instead (a directory, sftp://…/dir or s3://bucket/prefix): its snapshots, levels, restore points and what is missing."`
	Verify  bool     `help:"Also check each backup: sha256, decompression and integrity_check (reads every file)."`
	Quick   bool     `help:"Check each backup with quick_check instead of integrity_check (implies --verify)."`
	Deep    bool     `help:"Also recompute the rows and content hash each manifest recorded (implies --verify)."`
	TempDir string   `placeholder:"DIR" help:"Where compressed or encrypted backups are decompressed or decrypted to be checked (default: the system temp dir)."`
	Remote  []string `placeholder:"URL" help:"List the backups on this remote instead (sftp://… or s3://…); repeat for several."`
	IdentityFlags
	RemoteFlags
}

func (c *ListCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	// Only a database named explicitly narrows the list; otherwise every
	// backup in the directory is shown.
	c.Verify = c.Verify || c.Quick || c.Deep
	ids, err := c.identities()
	if err != nil {
		return err
	}
	if c.Replica != "" {
		if c.Verify || len(c.Remote) > 0 && originOf(kctx, "remote").Origin == config.FromFlag {
			return usagef("sqlite-backup list /srv/litestream/app   (then: sqlite-backup verify /srv/litestream/app)", "list REPLICA takes no --verify or --remote; verify REPLICA checks its newest point")
		}
		return listReplica(ctx, g, c.Replica, c.RemoteFlags)
	}
	var dbs []string
	if o := originOf(kctx, "source"); o.Origin == config.FromFlag || o.Origin == config.FromEnv || o.Origin == config.FromFile {
		srcs, err := findSources(kctx, g)
		if err != nil {
			return err
		}
		for _, s := range srcs {
			dbs = append(dbs, filepath.Base(s.Path))
		}
	}
	if originOf(kctx, "remote").Origin == config.FromFlag && len(c.Remote) > 0 {
		if c.Verify {
			return usagef("sqlite-backup verify s3://bucket/prefix/app.db.20250101_120000", "list --remote does not check files; verify URL/NAME downloads one and checks it")
		}
		return listRemotes(ctx, g, c.Remote, c.RemoteFlags, dbs)
	}
	es, err := backup.List(ctx, backup.ListOptions{Dir: g.BackupDir, DBs: dbs, Verify: c.Verify, Quick: c.Quick, Deep: c.Deep, TempDir: c.TempDir, Identities: ids})
	if err != nil {
		return err
	}
	switch {
	case g.JSON:
		for _, e := range es {
			r := listJSON{Entry: e}
			if t := startedAt(e); t != nil {
				r.Started = t
			}
			g.addResult(r)
		}
	case len(es) == 0:
		// A bare header looks like a listing that went wrong.
		what := "no backups"
		if len(dbs) > 0 {
			what += " of " + strings.Join(dbs, ", ")
		}
		fmt.Fprintf(g.stdout, "%s in %s\n", what, g.BackupDir)
	default:
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		// Both times are this machine's local time, its zone in the
		// header: a backup named on a machine in another zone gets its
		// TIME from its manifest, so it agrees with VERIFIED.
		zone, _ := time.Now().Zone()
		fmt.Fprintf(tw, "TIME (%s)\tBACKUP\tSIZE\tCOMPRESSION\tVERIFIED\tSHA256\tROWS\tNOTE\n", zone)
		for _, e := range es {
			verified := "-"
			if e.VerifiedAt != nil {
				verified = e.VerifiedAt.Local().Format(time.DateTime)
			}
			when := e.Time.Format(time.DateTime)
			note := ""
			if t := startedAt(e); t != nil {
				when = t.Local().Format(time.DateTime)
				if d := e.Time.Sub(t.In(e.Time.Location())); d > time.Minute || d < -time.Minute {
					// The name's timestamp is the local time of where it
					// was taken; say so rather than show two clocks.
					note = "named in another time zone "
				}
			}
			rows := "-"
			if e.Rows != nil {
				rows = strconv.FormatInt(*e.Rows, 10)
			}
			if e.Shrink {
				note = "SHRINK WARNING "
			}
			// A point of an incremental chain says its kind and parent;
			// a backup outside any chain says nothing more.
			switch c := e.Chain; {
			case c != nil && c.Kind == manifest.KindIncrement:
				note += fmt.Sprintf("increment %d on %s ", c.Seq, c.Parent)
				if c.Checked == "" && e.Verify == nil {
					note += "(materialized not checked) "
				}
			case c != nil:
				note += "full, starts a chain "
			case e.Kind == retention.KindIncrement:
				note += "increment "
			}
			if c := e.Chain; c != nil && c.TXID != 0 {
				// --layout litestream: what litestream restore -txid takes.
				note += fmt.Sprintf("litestream txid %016x ", c.TXID)
			}
			if e.Manifest != "ok" {
				note += "manifest " + e.Manifest + " "
			}
			if e.Encryption != "" {
				note += "age "
			}
			if e.Verify != nil {
				if e.Verify.NotChecked != "" {
					note += "content NOT CHECKED: " + e.Verify.NotChecked
				} else if e.Verify.OK {
					note += "check ok"
				} else {
					note += "check FAILED: " + e.Verify.Summary()
				}
				if e.Verify.Note != "" {
					note += "; " + e.Verify.Note
				}
			}
			if e.Error != "" {
				note += "ERROR: " + e.Error
			}
			// A file name is anyone's: escapes and newlines in it are
			// shown, not obeyed.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", when, redact.Printable(e.Name), size.Human(e.Size), e.Compression, verified, redact.Printable(e.SHA256), rows, redact.Printable(strings.TrimSpace(note)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if c.Verify {
		failed, errs, unchecked := 0, 0, 0
		var firstErr error
		for _, e := range es {
			switch {
			case e.Error != "":
				errs++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s", e.Error)
				}
			case e.Verify != nil && e.Verify.NotChecked != "":
				unchecked++
			case e.Verify != nil && !e.Verify.OK:
				failed++
			}
		}
		switch {
		case failed > 0:
			return &verifyFailed{failed: failed, total: len(es)}
		case firstErr != nil:
			return firstErr
		case unchecked > 0:
			// No verdict is not a pass (as in verify).
			return hint.Wrap(fmt.Errorf("list --verify: %d of %d backups encrypted with age and no --identity given: content not checked, no verdict", unchecked, len(es)),
				"sqlite-backup list --backup-dir %s --verify -i KEY", shellQuote(g.BackupDir))
		}
		return nil
	}
	return nil
}

// listJSON adds the manifest's start time, the instant the backup was
// taken (the name's timestamp is the local time where it was taken).
type listJSON struct {
	backup.Entry
	Started *time.Time `json:"started,omitempty"`
}

// startedAt is when the backup was taken by its manifest, if it has one.
func startedAt(e backup.Entry) *time.Time {
	if e.Manifest != "ok" {
		return nil
	}
	m, err := manifest.Read(e.Path)
	if err != nil || m.Started.IsZero() {
		return nil
	}
	return &m.Started
}

// replicaJSON is list's --json result for a Litestream replica.
type replicaJSON struct {
	Kind string `json:"kind"` // "litestream"
	litestream.Summary
}

// listReplica shows what a Litestream replica holds: snapshots, each
// level's files, the TXIDs a restore can reach and what is missing.
func listReplica(ctx context.Context, g *Globals, loc string, flags RemoteFlags) error {
	r, err := litestream.Open(ctx, loc, flags.options())
	if errors.Is(err, litestream.ErrNotReplica) {
		return usagef("sqlite-backup list /srv/litestream/app   (or list --backup-dir DIR for this tool's backups)", "%s: not a Litestream replica: no LTX files in ltx/<level>/ or <level>/ (S3) there", remote.Redact(loc))
	}
	if err != nil {
		return err
	}
	defer r.Close()
	s := r.Summarize()
	if g.JSON {
		g.addResult(replicaJSON{Kind: litestream.Kind, Summary: s})
		return nil
	}
	w := g.stdout
	fmt.Fprintf(w, "litestream replica %s\n", redact.Printable(s.Location))
	if s.Newest != nil {
		fmt.Fprintf(w, "newest point: TXID %s (%s), restored from %d files\n", s.Newest.TXID, s.Newest.Created.Local().Format(time.DateTime), s.Newest.Files)
	} else {
		fmt.Fprintf(w, "newest point: NOT RESTORABLE: %s\n", s.NewestErr)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	zone, _ := time.Now().Zone()
	fmt.Fprintf(tw, "LEVEL\tFILES\tTXIDS\tFIRST (%s)\tLAST\tSIZE\n", zone)
	for _, l := range s.Levels {
		name := strconv.Itoa(l.Level)
		if l.Level == litestream.SnapshotLevel {
			name += " (snapshots)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s-%s\t%s\t%s\t%s\n", name, l.Files, l.MinTXID, l.MaxTXID, l.First.Local().Format(time.DateTime), l.Last.Local().Format(time.DateTime), size.Human(l.Bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range s.Snapshots {
		fmt.Fprintf(w, "snapshot %s: TXIDs %s-%s, %s, %s\n", f.Name(), f.MinTXID, f.MaxTXID, f.Created.Local().Format(time.DateTime), size.Human(f.Size))
	}
	fmt.Fprintf(w, "restore points: %d (--txid): %s\n", len(s.Points), txidRanges(pointTXIDs(s.Points)))
	if len(s.Points) > 0 {
		fmt.Fprintf(w, "from %s to %s (--at)\n", s.Points[0].Created.Local().Format(time.DateTime), s.Points[len(s.Points)-1].Created.Local().Format(time.DateTime))
	}
	for _, gp := range s.Gaps {
		fmt.Fprintf(w, "MISSING: TXIDs %s-%s are in no file\n", gp.From, gp.To)
	}
	if len(s.Unreachable) > 0 {
		fmt.Fprintf(w, "not restorable: %d file ends (%s): before every snapshot, after a gap, or where retention removed a level's files\n", len(s.Unreachable), txidRanges(s.Unreachable))
	}
	return nil
}

func pointTXIDs(ps []litestream.Point) []ltx.TXID {
	out := make([]ltx.TXID, len(ps))
	for i, p := range ps {
		out[i] = p.TXID
	}
	return out
}

// txidRanges shows sorted TXIDs as runs: "01-05, 07".
func txidRanges(ts []ltx.TXID) string {
	if len(ts) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(ts); {
		j := i
		for j+1 < len(ts) && ts[j+1] == ts[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, ts[i].String())
		} else {
			parts = append(parts, ts[i].String()+"-"+ts[j].String())
		}
		i = j + 1
	}
	if len(parts) > 8 {
		parts = append(parts[:4], fmt.Sprintf("… %d runs …", len(parts)-8), parts[len(parts)-4], parts[len(parts)-3], parts[len(parts)-2], parts[len(parts)-1])
	}
	return strings.Join(parts, ", ")
}
