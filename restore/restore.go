// Package restore puts a verified backup back in place of a database.
// Nothing is touched until the backup has passed verification and the
// space the restore writes beside the target is known to be free. An
// existing target is first saved as a consistent snapshot beside it.
// When no other process has the target open, the backup is written to a
// temp file beside it and renamed over it (offline); when the application
// has it open, the pages are copied into the live database with SQLite's
// backup API under SQLite's own locking (online). Either way the target
// is checked with integrity_check afterwards.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/superfly/ltx"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/host/passwd"
	"sqlite-backup/internal/litestream"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/internal/sys/lock"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// Mode says how the backup is put in place.
type Mode string

const (
	// ModeAuto is offline unless another process holds the target open.
	ModeAuto Mode = ""
	// ModeOffline replaces the file: temp file, rename, fsync.
	ModeOffline Mode = "offline"
	// ModeOnline copies pages into the live database with the backup API.
	ModeOnline Mode = "online"
)

// Options describe one restore.
type Options struct {
	Backup string // the backup file to restore from
	Target string // the database to replace
	Force  bool   // replace an existing target (after a safety copy)
	Mode   Mode
	DryRun bool // verify the backup and say what would happen, change nothing
	// BusyTimeout is how long to wait for the application's locks.
	BusyTimeout time.Duration
	// Now names the safety copy; tests inject a clock. Defaults to time.Now.
	Now func() time.Time
	// Identities open an encrypted (age) backup, which is decrypted into
	// a private temp file beside the target, checked and restored from.
	Identities []age.Identity
	// Remote reaches a Backup given as URL/NAME: it is downloaded with
	// its sidecars into a private directory beside the target, checked
	// against its .sha256 on the way in, restored from and removed.
	// FetchProgress follows the download.
	Remote        remote.Options
	FetchProgress func(done, total int64)
	// Phase, Pages and Check follow the restore on a terminal: Phase as
	// each step starts (see the Phase* names), Pages with the pages a
	// copy has done, Check as verify.Options.Progress for the checks of
	// the backup and of the safety copy.
	Phase func(name string)
	Pages func(done, total int64)
	Check func(done, total int64, finished bool)

	// Backup may name a Litestream v0.5 replica (a directory,
	// sftp://…/dir or s3://bucket/prefix), recognised by its layout: the
	// point ending at ReplicaTXID, else the newest before ReplicaAt,
	// else its newest is built from the files Litestream would choose
	// and checked in a private directory beside the target
	// (internal/litestream), then restored from. Either set for a Backup
	// that is no replica is ErrNotReplica.
	ReplicaTXID ltx.TXID
	ReplicaAt   time.Time

	holders []Process // named in a busy error
}

// ErrNotReplica is wrapped by the error Run returns when a point of a
// replica is asked for (ReplicaTXID, ReplicaAt) of a Backup that is not
// a Litestream replica; the CLI reports it as a usage error.
var ErrNotReplica = errors.New("not a Litestream replica")

// The steps Options.Phase names.
const (
	PhaseVerify  = "verify backup"
	PhaseSave    = "save current"
	PhaseSaveChk = "check saved"
	PhaseRestore = "restore"
	PhaseCheck   = "check restored"
)

func (o Options) phase(name string) {
	if o.Phase != nil {
		o.Phase(name)
	}
}

// Process is another process that has the target open.
type Process struct {
	PID     int    `json:"pid"`
	Command string `json:"command,omitempty"` // its /proc comm name
}

// Result says what was done (or, with DryRun, what would be done).
type Result struct {
	Backup        string `json:"backup"`
	Target        string `json:"target"`
	DryRun        bool   `json:"dry_run,omitempty"`
	Mode          Mode   `json:"mode"`
	TargetExisted bool   `json:"target_existed"`
	Holders       []int  `json:"holders,omitempty"` // pids that had the target open
	// HolderProcesses names them (the same pids, with their command).
	HolderProcesses []Process `json:"holder_processes,omitempty"`
	SafetyCopy      string    `json:"safety_copy,omitempty"`
	SafetySize      int64     `json:"safety_copy_size,omitempty"`
	SafetyCheck     string    `json:"safety_copy_check,omitempty"` // "ok" or the problems found
	JournalMode     string    `json:"journal_mode"`                // "wal" or "delete" (rollback)
	Removed         []string  `json:"removed,omitempty"`           // stale sidecars removed (offline)
	Check           string    `json:"check"`                       // "integrity_check ok" after restore
	// CheckedAs says how the database in place was shown to pass Check:
	// "in place" (integrity_check of the target after the restore),
	// "renamed" (offline: the very file that passed it before it got a
	// name was renamed into place) or "copied" (offline: a copy of a
	// backup whose SHA-256 the check proved against its .sha256, with
	// that SHA-256); after either, the SHA-256 of the file, the header
	// fields setting its journal mode rewrites aside, was the same after
	// as before that write (see offline).
	CheckedAs string `json:"checked_as,omitempty"`
	Size      int64  `json:"size"`
	PageSize  int    `json:"page_size"`
	Pages     int64  `json:"pages"`
	// Chain names the files a point of an incremental chain was
	// materialized from: its full, then each increment.
	Chain []string `json:"chain,omitempty"`
	// Replica says which point of a Litestream replica was restored.
	Replica *verify.Replica `json:"replica,omitempty"`
	// Space is what the restore writes beside the target before it
	// frees anything, and what was free there (checked before).
	Space *Space `json:"space,omitempty"`
	// Owner ("user:group") and FileMode ("0640") of the restored file.
	Owner    string `json:"owner,omitempty"`
	FileMode string `json:"file_mode,omitempty"`
	// OwnerNote is set when a new database ended up owned by root,
	// which an application running as another user cannot open.
	OwnerNote string `json:"owner_note,omitempty"`

	Duration time.Duration `json:"-"`
	// Replaced: the target holds the backup's content (set before the
	// final check, so an error after it says the old database is gone).
	Replaced bool `json:"-"`
}

// ErrTargetExists is wrapped by the error Run returns when the target
// exists and Force is not set; the CLI reports it as a usage error.
var ErrTargetExists = errors.New("target exists")

// ErrNeedIdentity is wrapped by the error Run returns for an encrypted
// backup without Identities; the CLI reports it as a usage error.
var ErrNeedIdentity = errors.New("the backup is encrypted with age; give the private key that opens it")

// SafetySuffix is put between the target's name and the timestamp of
// the snapshot taken before it is replaced.
const SafetySuffix = ".pre-restore."

// Run restores one backup. See the package comment for the order of
// events; on error before the final rename (offline) or before the copy
// commits (online), the target is as it was.
func Run(ctx context.Context, opts Options) (*Result, error) {
	started := time.Now()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Backup == "" {
		return nil, hint.Wrap(errors.New("no backup file given"), "sqlite-backup restore /backup/app.db.20260101_120000 --to /srv/app/app.db")
	}
	// A Litestream replica is known by its layout, here or remote.
	rep, err := openReplica(ctx, opts)
	if err != nil {
		return nil, err
	}
	if rep != nil {
		defer rep.Close()
	}
	// A remote backup (URL/NAME) is named without secrets in every
	// message, and downloaded once the target's directory is locked.
	var remoteURL, bk string
	if rep != nil {
		bk = rep.Location
		if remote.IsURL(opts.Backup) {
			opts.Backup = rep.Location
			bk = ""
		}
	} else if remote.IsURL(opts.Backup) {
		remoteURL, opts.Backup = opts.Backup, remote.Redact(opts.Backup)
		// Known by its name before a byte is downloaded.
		if len(opts.Identities) == 0 && strings.HasSuffix(remoteURL, encrypt.Suffix) {
			return nil, fmt.Errorf("restore from %q: %w", opts.Backup, ErrNeedIdentity)
		}
	} else {
		var err error
		if bk, err = filepath.Abs(opts.Backup); err != nil {
			return nil, fmt.Errorf("backup %q: %w", opts.Backup, err)
		}
		if len(opts.Identities) == 0 && encrypt.IsAge(bk) {
			return nil, fmt.Errorf("restore from %q: %w", opts.Backup, ErrNeedIdentity)
		}
	}
	target, err := checkTarget(opts.Target, bk, opts.Backup)
	if err != nil {
		return nil, err
	}
	res := &Result{Backup: bk, Target: target, DryRun: opts.DryRun, Check: "integrity_check"}
	if remoteURL != "" || rep != nil {
		res.Backup = opts.Backup
	}

	// One run at a time in the target's directory, from the decompressed
	// temp file to the rename: a backup run there would otherwise take our
	// temp files for a dead run's and remove them.
	lk, err := lock.Acquire(ctx, filepath.Dir(target), 0)
	if err != nil {
		return nil, err
	}
	defer lk.Release()
	snapshot.RemoveStaleTemps(filepath.Dir(target))
	if remoteURL != "" {
		// A point of a chain comes with every file it needs.
		local, release, err := remote.FetchChainURL(ctx, remoteURL, opts.Remote, filepath.Dir(target), opts.FetchProgress)
		var de *remote.DamagedError
		if errors.As(err, &de) {
			vr := verify.Result{Path: opts.Backup, Check: "integrity_check", SHA256: "mismatch", Problems: []string{"sha256 mismatch: " + de.Error()}}
			return nil, hint.Wrap(fmt.Errorf("backup %q failed verification; nothing was restored: %w", opts.Backup, &verify.FailedError{Result: vr}),
				"pick another backup: sqlite-backup list --remote %s", hint.Quote(remote.Redact(remoteURLOf(remoteURL))))
		}
		if err != nil {
			return nil, err
		}
		defer release()
		bk = local
		if len(opts.Identities) == 0 && encrypt.IsAge(bk) {
			return nil, fmt.Errorf("restore from %q: %w", opts.Backup, ErrNeedIdentity)
		}
	}

	// 1. Room for what the restore writes beside the target, before the
	// first byte of it: the decompressed copy of a compressed or
	// encrypted backup comes first. The target's state and who holds it
	// are looked at again after the check, which takes a while.
	var download int64
	if remoteURL != "" {
		download = sizeOf(bk)
	}
	point := chain.IsIncrement(bk)
	if packed := encrypt.IsAge(bk) || compress.KindOf(bk) != compress.None; packed || point {
		if tgt, err := inspectTarget(target); err == nil && (!tgt.exists || opts.Force) {
			holders, _ := Holders(target)
			if mode, err := chooseMode(opts, target, tgt, holders); err == nil {
				size := newSizeOf(bk, true)
				if point {
					size = pointSize(bk)
				}
				sp := spacePlan(target, tgt, mode, size, download, size, false)
				if err := checkSpace(&sp, target, mode, download); err != nil {
					return nil, err
				}
			}
		}
	}

	// 2. The backup must be sound before anything is touched. A compressed
	// one is decompressed once, beside the target, and the checked copy is
	// what gets restored.
	opts.phase(PhaseVerify)
	var vr verify.Result
	var plain, checkedSum string
	if rep != nil {
		m, err := rep.Restore(ctx, litestream.Options{TXID: opts.ReplicaTXID, At: opts.ReplicaAt, TempDir: filepath.Dir(target), Keep: true, Progress: opts.Pages, Check: opts.Check})
		defer m.Release()
		var fe *verify.FailedError
		if errors.As(err, &fe) {
			return nil, hint.Wrap(fmt.Errorf("litestream replica %q failed verification; nothing was restored: %w", opts.Backup, err),
				"see what the replica holds: sqlite-backup list %s", hint.Quote(opts.Backup))
		}
		if err != nil {
			return nil, fmt.Errorf("restore from %q: %w", opts.Backup, err)
		}
		vr, plain = m.Check, m.Path
		vr.Size = m.Pages * int64(m.PageSize)
		res.Replica = m.Describe()
	} else if point {
		// A point of a chain: materialized, state and integrity checked,
		// into a private directory beside the target (materialize.go).
		op, m, err := materialize(ctx, bk, target, opts)
		defer op.Release()
		if err != nil {
			return nil, err
		}
		vr, plain = m.Check, m.Path
		res.Chain = vr.Chain
	} else {
		vr, err = verify.File(ctx, bk, verify.Options{TempDir: filepath.Dir(target), KeepDecompressed: true, Identities: opts.Identities, Progress: opts.Check, Fetched: remoteURL != ""})
		defer vr.RemoveDecompressed()
		if err != nil {
			return nil, fmt.Errorf("restore from %q: %w", opts.Backup, err)
		}
		if afterCheck != nil {
			afterCheck()
		}
		if !vr.OK {
			return nil, hint.Wrap(fmt.Errorf("backup %q failed verification; nothing was restored: %w", opts.Backup, &verify.FailedError{Result: vr}),
				"pick an older backup: ls -l %s", hint.Quote(filepath.Dir(bk)))
		}
		if plain, err = prepare(ctx, bk, vr.Decompressed); err != nil {
			return nil, err
		}
		if plain == bk && vr.SHA256 == "ok" {
			// The check proved the file's hash against its sidecar: a
			// copy with that hash is the checked file (offline). The
			// hash the check proved, not the sidecar read again: both
			// may have been rewritten together since.
			checkedSum = vr.Sum
		}
	}

	// 3. What is there now, and who has it open.
	tgt, err := inspectTarget(target)
	if err != nil {
		return nil, err
	}
	res.TargetExisted = tgt.exists
	if tgt.exists && !opts.Force {
		return nil, fmt.Errorf("restore to %q: %w; refusing to replace it without --force", target, ErrTargetExists)
	}
	holders, err := Holders(target)
	if err != nil {
		return nil, err
	}
	res.Holders, res.HolderProcesses = holders, processes(holders)
	if res.Mode, err = chooseMode(opts, target, tgt, holders); err != nil {
		return nil, err
	}
	res.JournalMode = "delete"
	if tgt.wal {
		// Offline: the restored file is switched to WAL. Online: the
		// backup API keeps a WAL destination in WAL.
		res.JournalMode = "wal"
	}
	if res.Mode == ModeOnline {
		if err := checkOnlinePageSize(tgt, plain, opts); err != nil {
			return nil, err
		}
	}
	// 4. Room for all of it again, now that the sizes are exact: what
	// was written so far (download, checked copy) counts as free.
	var decompressed int64
	if plain != bk {
		decompressed = sizeOf(plain)
	}
	// A downloaded backup is already a private copy of ours beside the
	// target (remote.FetchURL's dir): like a decompressed one, it is
	// renamed into place instead of copied once more.
	owned := plain != bk || remoteURL != ""
	sp := spacePlan(target, tgt, res.Mode, sizeOf(plain), download, decompressed, !owned)
	res.Space = &sp
	if err := checkSpace(&sp, target, res.Mode, download+decompressed); err != nil {
		return nil, err
	}
	if opts.DryRun {
		if tgt.exists {
			res.SafetyCopy = target + SafetySuffix + opts.Now().Format(snapshot.TimeFormat)
		}
		res.Size, res.PageSize, res.Pages = vr.Size, vr.PageSize, vr.Pages
		res.Check = ""
		res.Duration = time.Since(started)
		return res, nil
	}

	// 5. A consistent snapshot of what is about to be replaced.
	if tgt.exists {
		if err := safetyCopy(ctx, target, res, opts); err != nil {
			return nil, err
		}
	}

	// 6. Put the backup in place.
	opts.phase(PhaseRestore)
	switch res.Mode {
	case ModeOnline:
		opts.holders = res.HolderProcesses
		err = online(ctx, plain, target, opts)
	default:
		err = offline(ctx, plain, owned, checkedSum, target, tgt, res, opts)
	}
	if err != nil {
		return res, withSafetyHint(err, res)
	}
	res.Replaced = true

	// 7. Check what is now in place (a file renamed into place, or a
	// copy proven to be the checked file, was checked before: offline).
	if res.CheckedAs == "" {
		opts.phase(PhaseCheck)
	}
	if err := checkRestored(ctx, target, res, opts); err != nil {
		return res, withSafetyHint(err, res)
	}
	describeOwner(target, res)
	res.Duration = time.Since(started)
	return res, nil
}

// chooseMode turns Options.Mode into the mode this restore takes, given
// the target's state and the processes that have it open.
func chooseMode(opts Options, target string, tgt targetState, holders []int) (Mode, error) {
	switch {
	case opts.Mode == ModeAuto && len(holders) > 0:
		return ModeOnline, nil
	case opts.Mode == ModeAuto && tgt.exists && !holdersVisible():
		// Who has it open cannot be known here; copying in under SQLite's
		// own locking is safe either way.
		return ModeOnline, nil
	case opts.Mode == ModeAuto:
		return ModeOffline, nil
	case opts.Mode == ModeOffline && len(holders) > 0:
		return "", hint.Wrap(fmt.Errorf("restore to %q: %s; an offline restore would pull the file from under it", target, describeHolders(holders)),
			"stop the application first, or copy into the live database: sqlite-backup restore %s --to %s --force --online", hint.Quote(opts.Backup), hint.Quote(target))
	case opts.Mode == ModeOnline && !tgt.exists:
		return "", fmt.Errorf("restore to %q: --online needs an existing database to copy into; without it the restore is offline", target)
	}
	return opts.Mode, nil
}

// describeOwner records the restored file's owner and mode, and says so
// when a new database belongs to root: an application that runs as
// another user (www-data) cannot open it.
func describeOwner(target string, res *Result) {
	fi, err := os.Stat(target)
	if err != nil {
		return
	}
	res.FileMode = fmt.Sprintf("%04o", fi.Mode().Perm())
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	res.Owner = passwd.Name(int(st.Uid)) + ":" + passwd.GroupName(int(st.Gid))
	if !res.TargetExisted && st.Uid == 0 && os.Geteuid() == 0 {
		res.OwnerNote = fmt.Sprintf("new database %s is owned by %s, mode %s: an application that runs as another user cannot open it", target, res.Owner, res.FileMode)
	}
}

// checkTarget resolves the target and refuses names that cannot be a
// database to replace.
func checkTarget(t, bk, shown string) (string, error) {
	if t == "" {
		return "", hint.Wrap(errors.New("no database to restore to"), "name it: sqlite-backup restore BACKUP --to /srv/app/app.db")
	}
	abs, err := filepath.Abs(t)
	if err != nil {
		return "", fmt.Errorf("restore to %q: %w", t, err)
	}
	// A symlinked database is restored where the link points: renaming
	// over the link would leave the real file, which the application
	// may open by its own path, as it was.
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return "", fmt.Errorf("restore to %q: %w", t, fsx.PathErr(err))
		}
		abs = real
	}
	if db, ok := sqlitefile.SidecarOf(abs); ok {
		if _, err := os.Stat(db); err == nil {
			return "", hint.Wrap(fmt.Errorf("restore to %q: that is SQLite's %s file, not a database", t, abs[len(db):]),
				"restore to the database itself: sqlite-backup restore %s --to %s", hint.Quote(shown), hint.Quote(db))
		}
	}
	if abs == bk || fsx.SameFile(abs, bk) {
		return "", fmt.Errorf("restore to %q: that is the backup file itself", t)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("restore to %q: directory %q does not exist", t, filepath.Dir(abs))
	}
	return abs, nil
}

type targetState struct {
	exists   bool
	wal      bool // header says WAL: the restored file is switched to WAL too
	pageSize int
	fi       fs.FileInfo
}

func inspectTarget(target string) (targetState, error) {
	var s targetState
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("restore to %q: %w", target, fsx.PathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return s, fmt.Errorf("restore to %q: not a regular file", target)
	}
	s.exists, s.fi = true, fi
	f, err := os.Open(target)
	if err != nil {
		return s, fmt.Errorf("restore to %q: %w", target, fsx.PathErr(err))
	}
	defer f.Close()
	if h, err := sqlitefile.ReadHeader(f); err == nil {
		s.wal, s.pageSize = h.WAL, h.PageSize
	}
	return s, nil
}

// safetyCopy saves the current target through snapshot.Run: the backup API
// in one read transaction, so committed pages still in its -wal are
// included. It runs with VerifyNone and the copy is checked here instead,
// because a damaged database is the commonest reason to restore and
// snapshot.Run would throw a failing copy away; a damaged snapshot is still
// the only copy of the last state, so it is kept and reported.
func safetyCopy(ctx context.Context, target string, res *Result, opts Options) error {
	p := safetyName(target, opts.Now())
	so := snapshot.Options{
		Source:      target,
		Path:        p,
		Verify:      snapshot.VerifyNone,
		BusyTimeout: opts.BusyTimeout,
		Now:         opts.Now,
		LockHeld:    true,
	}
	if opts.Pages != nil {
		so.Progress = func(done, total int) { opts.Pages(int64(done), int64(total)) }
	}
	opts.phase(PhaseSave)
	br, err := snapshot.Run(ctx, so)
	if err != nil {
		return hint.Wrap(fmt.Errorf("safety copy of %q failed, nothing was restored: %w", target, err),
			"if the current file is beyond reading, move it aside yourself and restore to the free name: mv %s %s", hint.Quote(target), hint.Quote(target+".damaged"))
	}
	res.SafetyCopy, res.SafetySize = br.Path, br.Size
	opts.phase(PhaseSaveChk)
	vr, err := verify.File(ctx, br.Path, verify.Options{Progress: opts.Check})
	switch {
	case err != nil:
		return fmt.Errorf("check safety copy %q: %w", br.Path, err)
	case vr.OK:
		res.SafetyCheck = "ok"
	default:
		res.SafetyCheck = "FAILED: " + vr.Summary()
	}
	return nil
}

// safetyName is <target>.pre-restore.YYYYMMDD_HHMMSS, with -2, -3, … when
// restores in the same second would collide. The caller holds the
// directory lock, so the name stays free until snapshot.Run takes it.
func safetyName(target string, now time.Time) string {
	base := target + SafetySuffix + now.Format(snapshot.TimeFormat)
	p := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s-%d", base, i)
	}
}

// remoteURLOf is the remote of URL/NAME.
func remoteURLOf(objURL string) string {
	u, _, _ := remote.SplitObjectURL(objURL)
	return u
}

func withSafetyHint(err error, res *Result) error {
	if res.SafetyCopy == "" || hint.Of(err) != "" {
		return err
	}
	return hint.Wrap(err, "the database as it was before is saved in %s", res.SafetyCopy)
}

// processes names the pids by their command.
func processes(pids []int) []Process {
	var out []Process
	for _, p := range pids {
		out = append(out, Process{PID: p, Command: command(p)})
	}
	return out
}

// HolderList is "pid 1234 (gunicorn), pid 1240 (sqlite3)".
func HolderList(ps []Process) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "pid %d", p.PID)
		if p.Command != "" {
			fmt.Fprintf(&b, " (%s)", p.Command)
		}
	}
	return b.String()
}

func describeHolders(pids []int) string {
	if len(pids) == 1 {
		return "another process has it open: " + HolderList(processes(pids))
	}
	return fmt.Sprintf("%d other processes have it open: %s", len(pids), HolderList(processes(pids)))
}

// openReplica opens Backup as a Litestream replica when it is one (a
// directory or a remote URL with its layout); nil when it is not.
func openReplica(ctx context.Context, opts Options) (*litestream.Replica, error) {
	asked := opts.ReplicaTXID != 0 || !opts.ReplicaAt.IsZero()
	if !remote.IsURL(opts.Backup) {
		if fi, err := os.Stat(opts.Backup); err != nil || !fi.IsDir() {
			if asked {
				return nil, fmt.Errorf("restore from %q: --txid and --at with a backup are for a Litestream replica: %w", opts.Backup, ErrNotReplica)
			}
			return nil, nil
		}
	}
	r, err := litestream.Open(ctx, opts.Backup, opts.Remote)
	if errors.Is(err, litestream.ErrNotReplica) {
		if asked {
			return nil, fmt.Errorf("restore from %q: no Litestream LTX files there: %w", remote.Redact(opts.Backup), ErrNotReplica)
		}
		return nil, nil
	}
	if err != nil && !remote.IsURL(opts.Backup) {
		return nil, err
	}
	if err != nil {
		// A URL/NAME of a backup may fail a replica's listing in ways
		// its download will say better.
		if asked {
			return nil, err
		}
		return nil, nil
	}
	return r, nil
}
