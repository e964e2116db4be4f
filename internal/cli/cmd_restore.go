package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/superfly/ltx"

	"sqlite-backup/backup"
	"sqlite-backup/config"
	"sqlite-backup/internal/output/journal"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/internal/output/size"
	"sqlite-backup/remote"
	"sqlite-backup/restore"
	"sqlite-backup/verify"
)

// RestoreCmd puts a verified backup back in place of the database.
type RestoreCmd struct {
	File    string   `arg:"" optional:"" name:"backup" help:"Backup file to restore from: a full backup or an increment (.ltx, materialized from its chain), or a remote backup as URL/NAME (downloaded with its sidecars beside the target, checked, removed), or a Litestream replica (a directory, sftp://…/dir or s3://bucket/prefix; its newest point unless --at or --txid)."`
	At      string   `placeholder:"TIME" env:"-" help:"Instead of BACKUP, restore the newest backup of the database (--source) in --backup-dir, or on --remote, taken at or before TIME: \"YYYY-MM-DD HH:MM[:SS]\" in local time, or RFC 3339. With a Litestream replica as BACKUP: its newest point before TIME."`
	TXID    string   `name:"txid" placeholder:"TXID" env:"-" help:"With a Litestream replica as BACKUP: restore the point that ends at this TXID (hex, as in its file names)."`
	Remote  []string `placeholder:"URL" help:"With --at: pick the backup on this remote (sftp://… or s3://…) instead of --backup-dir."`
	To      string   `placeholder:"PATH" help:"Database to restore to (default: the source, found as for backups)."`
	Force   bool     `env:"-" help:"Replace an existing database; a snapshot of it is first saved as <db>.pre-restore.YYYYMMDD_HHMMSS."`
	Online  bool     `xor:"mode" help:"Copy into the live database with SQLite's backup API (the default when another process has it open)."`
	Offline bool     `xor:"mode" help:"Replace the file (the default when no other process has it open); refused if one does."`
	DryRun  bool     `help:"Verify the backup and say what would be done, without changing anything."`
	IdentityFlags
	RemoteFlags
}

func (c *RestoreCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals) error {
	// Replacing a database must be asked for on the command line, not
	// left on in a config file where it would apply to every restore.
	if c.Force && originOf(kctx, "force").Origin != config.FromFlag {
		return usagef("sqlite-backup restore BACKUP --to PATH --force", "--force must be given on the command line, not in a config file")
	}
	ids, err := c.identities()
	if err != nil {
		return err
	}
	if c.At == "" && len(c.Remote) > 0 && originOf(kctx, "remote").Origin == config.FromFlag {
		return usagef("sqlite-backup restore s3://bucket/prefix/app.db.20260101_120000   (or --at TIME --remote URL)", "--remote picks a backup by time with --at; to name one, give it as URL/NAME")
	}
	var picked *backup.Point
	var replicaAt time.Time
	replicaTXID, err := parseTXID(c.TXID, c.At)
	if err != nil {
		return usagef("sqlite-backup restore /srv/litestream/app --txid 0000000000000a3f --to /tmp/then.db", "%v", err)
	}
	switch {
	case c.At != "" && c.File != "":
		// A Litestream replica's point by time; restore.Run refuses it
		// (ErrNotReplica) for any other backup.
		if replicaAt, err = parseAt(c.At); err != nil {
			return usagef(`sqlite-backup restore /srv/litestream/app --at "2026-01-02 15:04" --to /tmp/then.db`, "%v", err)
		}
	case c.At != "":
		if picked, err = pointAt(ctx, kctx, g, c.At, "restore", c.Remote, c.RemoteFlags); err != nil {
			if u := (*atUsage)(nil); errors.As(err, &u) {
				return usagef(`sqlite-backup restore --at "2026-01-02 15:04" --source /srv/app/app.db --backup-dir /backup --to /tmp/then.db   (or --remote URL instead of --backup-dir)`, "%v", u)
			}
			return err
		}
		c.File = picked.Path
	case c.File == "":
		return usagef("sqlite-backup restore /backup/app.db.20260101_120000 --to /srv/app/app.db   (or --at \"2026-01-02 15:04\")", "no backup given: name one, or a time with --at")
	}
	to := c.To
	if to == "" {
		src, err := findSource(kctx, g)
		if err != nil {
			return err
		}
		to = src.Path
	}
	opts := restore.Options{
		Backup:      c.File,
		Target:      to,
		Force:       c.Force,
		DryRun:      c.DryRun,
		BusyTimeout: g.BusyTimeout,
		Identities:  ids,
		Remote:      c.RemoteFlags.options(),
		ReplicaTXID: replicaTXID,
		ReplicaAt:   replicaAt,
	}
	if remote.IsURL(c.File) {
		fn, clear := fetchProgress(g.stderr(), c.File)
		defer clear()
		opts.FetchProgress = fn
	}
	switch {
	case c.Online:
		opts.Mode = restore.ModeOnline
	case c.Offline:
		opts.Mode = restore.ModeOffline
	}
	tty := newTTYStatus(g.stderr(), to)
	opts.Phase, opts.Pages, opts.Check = tty.phaseFn(), tty.pagesFn(), tty.checkProgress("")
	res, err := restore.Run(ctx, opts)
	tty.clear()
	shown := c.File
	if remote.IsURL(c.File) {
		shown = remote.Redact(c.File)
	}
	if errors.Is(err, restore.ErrNeedIdentity) {
		return usagef(fmt.Sprintf("sqlite-backup restore %s --to %s -i KEY", shellQuote(shown), shellQuote(to)), "%v", err)
	}
	if errors.Is(err, restore.ErrNotReplica) {
		return usagef("sqlite-backup restore --at \"2026-01-02 15:04\" --backup-dir /backup --source /srv/app/app.db   (--at or --txid with a backup: only for a Litestream replica)", "%v", err)
	}
	err = restoreHint(err, shown, to)
	if errors.Is(err, restore.ErrTargetExists) {
		return usagef(fmt.Sprintf("sqlite-backup restore %s --to %s --force   (saves the current database first)", shellQuote(shown), shellQuote(to)), "%v", err)
	}
	if res != nil && res.SafetyCopy != "" && err != nil && !g.JSON {
		printSafetyCopy(g.stdout, res)
	}
	if err != nil && res != nil && res.Replaced {
		done := fmt.Sprintf("%s already holds the restored backup, not yet checked (check it: sqlite-backup verify %s)", redact.Printable(res.Target), shellQuote(res.Target))
		if res.SafetyCopy != "" {
			done += "; the database before is saved as " + res.SafetyCopy
		}
		err = &doneBefore{err: err, done: done}
	}
	if err != nil {
		return err
	}
	var ownerHint string
	if res.OwnerNote != "" {
		ownerHint = fmt.Sprintf("if the application runs as another user, give it the file: chown USER: %s", shellQuote(res.Target))
		fmt.Fprintf(g.stderr(), "sqlite-backup: note: %s\n", res.OwnerNote)
		fmt.Fprintf(g.stderr(), "%shint: %s\n", journal.Prefix(g.stderr(), journal.Notice), ownerHint)
	}
	if g.JSON {
		r := restoreJSON{Result: res, OK: true, Check: "integrity_check", DurationMS: res.Duration.Milliseconds(), Hint: ownerHint}
		if picked != nil {
			r.At, r.Taken = c.At, &picked.Taken
		}
		g.addResult(r)
		return nil
	}
	return printRestore(g.stdout, res)
}

// printSafetyCopy says where the database as it was before went, how
// large it is and whether it passed its check.
func printSafetyCopy(w io.Writer, r *restore.Result) {
	fmt.Fprintf(w, "safety copy: %s (%s, integrity_check %s)\n", redact.Printable(r.SafetyCopy), size.Human(r.SafetySize), r.SafetyCheck)
}

// restoreJSON is restore's --json result: check and ok as backup and
// verify say them.
type restoreJSON struct {
	*restore.Result
	OK         bool   `json:"ok"`
	Check      string `json:"check"`
	DurationMS int64  `json:"duration_ms"`
	// Hint goes with the result's owner_note.
	Hint string `json:"hint,omitempty"`
	// At is --at as given, Taken when the backup picked for it was taken.
	At    string     `json:"at,omitempty"`
	Taken *time.Time `json:"taken,omitempty"`
}

func printRestore(w io.Writer, r *restore.Result) error {
	if r.DryRun {
		fmt.Fprintf(w, "dry run: backup %s: integrity_check ok, %d bytes, %d pages\n", redact.Printable(r.Backup), r.Size, r.Pages)
		if r.TargetExisted {
			fmt.Fprintf(w, "dry run: would save the current %s as %s\n", redact.Printable(r.Target), redact.Printable(r.SafetyCopy))
		}
		how := "offline: write a temp file beside it, remove its stale -wal/-shm, rename it into place"
		if r.Mode == restore.ModeOnline {
			how = "online: copy into the live database with SQLite's backup API"
		}
		if len(r.HolderProcesses) > 0 {
			how += " (open by " + restore.HolderList(r.HolderProcesses) + ")"
		}
		fmt.Fprintf(w, "dry run: would restore %s to %s %s, journal_mode %s\n", redact.Printable(r.Backup), redact.Printable(r.Target), how, r.JournalMode)
		printSpace(w, "dry run: would write", r.Space)
		return nil
	}
	if r.SafetyCopy != "" {
		printSafetyCopy(w, r)
	}
	if len(r.HolderProcesses) > 0 {
		fmt.Fprintf(w, "open by %s: copied into the live database\n", restore.HolderList(r.HolderProcesses))
	}
	for _, p := range r.Removed {
		fmt.Fprintf(w, "removed stale %s\n", redact.Printable(p))
	}
	if r.Replica != nil {
		printReplica(w, r.Backup, r.Replica)
	}
	if n := len(r.Chain); n > 0 {
		incs := "1 increment"
		if n != 2 {
			incs = fmt.Sprintf("%d increments", n-1)
		}
		fmt.Fprintf(w, "materialized %s from its chain: %s + %s, state checksum and integrity_check ok\n", redact.Printable(r.Backup), redact.Printable(r.Chain[0]), incs)
	}
	fmt.Fprintf(w, "restored %s -> %s (%s, journal_mode %s): %s, %d bytes, %d pages, %s\n",
		redact.Printable(r.Backup), redact.Printable(r.Target), r.Mode, r.JournalMode, r.Check, r.Size, r.Pages, r.Duration.Round(time.Millisecond))
	if !r.TargetExisted && r.Owner != "" {
		fmt.Fprintf(w, "new database %s: owner %s, mode %s\n", redact.Printable(r.Target), r.Owner, r.FileMode)
	}
	return nil
}

// printSpace says what the restore writes beside the target before it
// frees anything, and what was free there.
func printSpace(w io.Writer, prefix string, s *restore.Space) {
	if s == nil || s.Dir == "" {
		return
	}
	fmt.Fprintf(w, "%s up to %s in %s before freeing anything; %s free\n", prefix, size.Human(s.Needed), redact.Printable(s.Dir), size.Human(s.Free))
}

// parseTXID reads --txid: hex, as Litestream names its files (with or
// without the leading zeros).
func parseTXID(s, at string) (ltx.TXID, error) {
	if s == "" {
		return 0, nil
	}
	if at != "" {
		return 0, errors.New("give --txid or --at, not both")
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("--txid %q: give a TXID in hex as in Litestream's file names (0000000000000a3f or a3f)", s)
	}
	return ltx.TXID(v), nil
}

// printReplica says a backup was read as a Litestream replica, which
// point and from which files.
func printReplica(w io.Writer, loc string, r *verify.Replica) {
	files := "1 file"
	if len(r.Files) != 1 {
		files = fmt.Sprintf("%d files", len(r.Files))
	}
	state := ""
	if r.StateChecksum != "" {
		state = ", state checksum " + r.StateChecksum
	}
	fmt.Fprintf(w, "read %s as a Litestream replica: point TXID %s (%s), built from %s (%s)%s\n",
		redact.Printable(loc), r.TXID, r.Time.Local().Format(time.DateTime), files, redact.Printable(strings.Join(r.Files, ", ")), state)
}
