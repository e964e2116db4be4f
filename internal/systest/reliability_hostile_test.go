package systest

import (
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostile is one bad (or merely awkward) input. Each case gets a fresh
// directory; the test asserts the exit code, that stderr names the file
// and the operation, and that nothing in the directory was changed,
// removed or created beyond the expected backups, the backup dir and its
// lock file.
type hostile struct {
	name  string
	setup func(c *hcase)
	args  []string // {D} is replaced by the case's directory
	env   []string
	code  int
	// stderr must contain each of these ({D} replaced); for exit 0 the
	// checks apply to stdout.
	want []string
	// mustNot must not appear in stderr (e.g. a password).
	mustNot []string
	// backups is the number of new backup files expected in {D}/out.
	backups int
	// nobody runs the tool as the unprivileged user nobody.
	nobody bool
	// walSource is the WAL source (relative to {D}) beside which SQLite
	// may leave an empty -wal and a -shm, owned by the source's owner.
	walSource string
}

type hcase struct {
	t   *testing.T
	dir string
	uid int
	gid int
}

var (
	templateOnce sync.Once
	templateDB   []byte
)

// db writes a valid little database (rollback journal unless wal).
func (c *hcase) db(name string, wal bool) string {
	templateOnce.Do(func() {
		p := filepath.Join(c.t.TempDir(), "t.db")
		cli3(c.t, p, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);"+
			"INSERT INTO t(v) SELECT hex(randomblob(200)) FROM generate_series(1,200);")
		var err error
		templateDB, err = os.ReadFile(p)
		if err != nil {
			c.t.Fatal(err)
		}
	})
	p := filepath.Join(c.dir, name)
	b := append([]byte(nil), templateDB...)
	if wal {
		b[18], b[19] = 2, 2
	}
	c.write(name, b, 0o644)
	return p
}

func (c *hcase) write(name string, b []byte, mode os.FileMode) {
	p := filepath.Join(c.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		c.t.Fatal(err)
	}
}

func (c *hcase) mkdir(name string, mode os.FileMode, owned bool) {
	p := filepath.Join(c.dir, name)
	if err := os.MkdirAll(p, mode); err != nil {
		c.t.Fatal(err)
	}
	os.Chmod(p, mode)
	if owned {
		if err := os.Chown(p, c.uid, c.gid); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *hcase) link(name, target string) {
	if err := os.Symlink(target, filepath.Join(c.dir, name)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *hcase) chown(name string) {
	if err := os.Chown(filepath.Join(c.dir, name), c.uid, c.gid); err != nil {
		c.t.Fatal(err)
	}
}

var (
	nobodyOnce sync.Once
	nobodyBin  string
	nobodyErr  string
	nobodyCred *syscall.Credential
)

// asNobody returns a copy of the tool that the user nobody can execute,
// and nobody's credentials; it skips when that is impossible here.
func asNobody(t *testing.T) (string, *syscall.Credential) {
	t.Helper()
	nobodyOnce.Do(func() {
		if os.Geteuid() != 0 {
			nobodyErr = "not root: cannot run the tool as another user"
			return
		}
		u, err := user.Lookup("nobody")
		if err != nil {
			nobodyErr = "no user nobody: " + err.Error()
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		nobodyCred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		dir, err := os.MkdirTemp("", "sqlite-backup-bin-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			nobodyErr = err.Error()
			return
		}
		sharedDirs = append(sharedDirs, dir)
		nobodyBin = filepath.Join(dir, "sqlite-backup")
		src, err := os.Open(toolPath(t))
		if err != nil {
			nobodyErr = err.Error()
			return
		}
		defer src.Close()
		dst, err := os.OpenFile(nobodyBin, os.O_CREATE|os.O_WRONLY, 0o755)
		if err == nil {
			_, err = io.Copy(dst, src)
			dst.Close()
		}
		if err != nil {
			nobodyErr = err.Error()
		}
	})
	if nobodyErr != "" {
		t.Skip("SKIP unprivileged case: " + nobodyErr)
	}
	return nobodyBin, nobodyCred
}

func TestHostileInputs(t *testing.T) {
	junk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/13)
		}
		return b
	}
	// The longest name a run writes is a sidecar's temp file:
	// .sqlite-backup-tmp-<db>.YYYYMMDD_HHMMSS-NNN.zst.sha256-<12 hex>.
	long := strings.Repeat("ä", 94) + ".db"      // 191 bytes: the longest that fits
	tooLong := strings.Repeat("ö", 96) + ".db"   // 195 bytes: would fit a plain backup, not its sidecars
	tooLong2 := strings.Repeat("x", 245) + ".db" // no timestamped name fits

	cases := []hostile{
		{name: "missing source", args: []string{"--source", "{D}/nope.db"}, code: 1,
			want: []string{`open source "{D}/nope.db": no such file`, "hint: "}},
		{name: "missing source in missing dir", args: []string{"--source", "{D}/sub/nope.db"}, code: 1,
			want: []string{`open source "{D}/sub/nope.db": no such file`}},
		{name: "source is a directory", setup: func(c *hcase) { c.mkdir("adir", 0o755, false) },
			args: []string{"--source", "{D}/adir"}, code: 1, want: []string{`open source "{D}/adir": not a regular file`, "hint: --source is the database file, not its directory: ls {D}/adir; "}},
		{name: "directory holding a database as source", setup: func(c *hcase) { c.mkdir("data", 0o755, false); c.db("data/app.db", false) },
			args: []string{"--source", "{D}/data", "--backup-dir", "{D}/out"}, code: 1, want: []string{`open source "{D}/data": not a regular file`, "hint: sqlite-backup --source {D}/data/app.db --backup-dir {D}/out\n"}},
		{name: "named pipe as source (must not block)", setup: func(c *hcase) { syscall.Mkfifo(filepath.Join(c.dir, "app.db"), 0o644) },
			args: []string{"--source", "{D}/app.db"}, code: 1, want: []string{`open source "{D}/app.db": not a regular file`}},
		{name: "a device as source", args: []string{"--source", "/dev/zero", "--backup-dir", "{D}/out"}, code: 1,
			want: []string{`open source "/dev/zero": not a regular file`}},
		// Paths are cleaned like any DATABASE_URL path: the file is meant.
		{name: "source with a trailing slash", setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db/", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/app.db.", "integrity_check ok"}},
		{name: "verify a named pipe (must not block)", setup: func(c *hcase) { syscall.Mkfifo(filepath.Join(c.dir, "p.db"), 0o644) },
			args: []string{"verify", "{D}/p.db"}, code: 3, want: []string{"{D}/p.db: FAILED: not a regular file (a named pipe)"}},
		{name: "empty file", setup: func(c *hcase) { c.write("app.db", nil, 0o644) },
			args: []string{"--source", "{D}/app.db"}, code: 1, want: []string{`open source "{D}/app.db": empty file (0 bytes)`}},
		{name: "random bytes", setup: func(c *hcase) { c.write("app.db", junk(8192), 0o644) },
			args: []string{"--source", "{D}/app.db"}, code: 1, want: []string{`open source "{D}/app.db": not a SQLite database`}},
		{name: "only the SQLite header", setup: func(c *hcase) { c.db("app.db", false); os.Truncate(filepath.Join(c.dir, "app.db"), 100) },
			args: []string{"--source", "{D}/app.db"}, code: 1, want: []string{`"{D}/app.db"`, "truncated"}},
		{name: "truncated db", setup: func(c *hcase) { c.db("app.db", false); os.Truncate(filepath.Join(c.dir, "app.db"), 4096*5+1000) },
			args: []string{"--source", "{D}/app.db"}, code: 1, want: []string{`"{D}/app.db"`, "truncated"}},
		{name: "corrupt page in the middle", setup: func(c *hcase) {
			p := c.db("app.db", false)
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt(junk(4096), 4096*6)
			f.Close()
		}, args: []string{"--source", "{D}/app.db"}, code: 3, want: []string{`backup of "{D}/app.db" failed integrity_check, so it was not kept`, "hint: "}},
		{name: "-wal file as source", setup: func(c *hcase) { c.db("app.db", true); c.write("app.db-wal", junk(4096), 0o644) },
			args: []string{"--source", "{D}/app.db-wal"}, code: 1, want: []string{`source "{D}/app.db-wal" is SQLite's -wal file`, `hint: back up the database itself: sqlite-backup --source {D}/app.db`}},
		{name: "-shm file as source", setup: func(c *hcase) { c.db("app.db", true); c.write("app.db-shm", junk(32768), 0o644) },
			args: []string{"--source", "{D}/app.db-shm"}, code: 1, want: []string{`source "{D}/app.db-shm" is SQLite's -shm file`}},
		{name: "-journal file as source", setup: func(c *hcase) { c.db("app.db", false); c.write("app.db-journal", junk(512), 0o644) },
			args: []string{"--source", "{D}/app.db-journal"}, code: 1, want: []string{`source "{D}/app.db-journal" is SQLite's -journal file`}},
		{name: "unreadable source (as nobody)", nobody: true, setup: func(c *hcase) {
			c.db("app.db", false)
			os.Chmod(filepath.Join(c.dir, "app.db"), 0o600)
			c.mkdir("out", 0o700, true)
		},
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1,
			want: []string{`open source "{D}/app.db": permission denied (owned by root, mode 0600; this runs as nobody)`,
				`hint: run it as the database's owner, with a backup directory that user may write: sudo -u root sqlite-backup --source {D}/app.db --backup-dir {D}/out`}},
		{name: "backup dir not writable (as nobody)", nobody: true, setup: func(c *hcase) { c.db("app.db", false); c.mkdir("out", 0o755, false) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1,
			want: []string{`open lock "{D}/out/.sqlite-backup.lock": permission denied` + "\n",
				`hint: user nobody may not write {D}/out: sudo install -d -m 700 -o nobody {D}/out` + "\n"}}, // nobody's home is /nonexistent: no ~/backups
		{name: "source dir not writable, rollback (as nobody)", nobody: true, setup: func(c *hcase) { c.db("app.db", false); c.mkdir("out", 0o700, true) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"integrity_check ok"}},
		{name: "source dir not writable, idle WAL (as nobody)", nobody: true, setup: func(c *hcase) { c.db("app.db", true); c.mkdir("out", 0o700, true) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1,
			want: []string{`read source "{D}/app.db": it is a WAL database with no app.db-shm file`, `may not write to "{D}"`, "hint: run the backup as the database's owner: sudo -u root"}},
		{name: "WAL source owned by another user (as root)", setup: func(c *hcase) {
			u, _ := user.Lookup("nobody")
			if u == nil {
				c.t.Skip("SKIP: no user nobody")
			}
			c.uid, _ = strconv.Atoi(u.Uid)
			c.gid, _ = strconv.Atoi(u.Gid)
			c.db("app.db", true)
			c.chown("app.db")
		}, walSource: "app.db", args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"integrity_check ok"}},
		{name: "backup dir not writable (as nobody)", nobody: true, setup: func(c *hcase) { c.db("app.db", false); c.mkdir("out", 0o755, false) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1, want: []string{`"{D}/out`, "permission denied"}},
		{name: "backup dir cannot be created (as nobody)", nobody: true, setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out/sub"}, code: 1, want: []string{`create backup dir "{D}/out/sub": permission denied`}},
		{name: "backup dir is a file", setup: func(c *hcase) { c.db("app.db", false); c.write("out", []byte("x"), 0o644) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1, want: []string{`backup dir "{D}/out": not a directory`}},
		{name: "backup dir below a file", setup: func(c *hcase) { c.db("app.db", false); c.write("f", []byte("x"), 0o644) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/f/out"}, code: 1, want: []string{`"{D}/f/out"`, "not a directory"}},
		{name: "--backup is the source", setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db", "--backup", "{D}/app.db"}, code: 1, want: []string{`backup "{D}/app.db": that is the source database itself`}},
		{name: "--backup is the source's -wal", setup: func(c *hcase) { c.db("app.db", true) },
			args: []string{"--source", "{D}/app.db", "--backup", "{D}/app.db-wal"}, code: 1, want: []string{`backup "{D}/app.db-wal": that is the source database-wal itself`}},
		{name: "--backup is the source through a symlink", setup: func(c *hcase) { c.db("app.db", false); c.link("alias.db", "app.db") },
			args: []string{"--source", "{D}/app.db", "--backup", "{D}/alias.db"}, code: 1, want: []string{`backup "{D}/alias.db": that is the source database itself`}},
		{name: "--backup exists", setup: func(c *hcase) { c.db("app.db", false); c.write("old.bak", []byte("keep me"), 0o600) },
			args: []string{"--source", "{D}/app.db", "--backup", "{D}/old.bak"}, code: 1, want: []string{`backup "{D}/old.bak": file exists; refusing to overwrite it`}},
		{name: "symlink planted at --backup", setup: func(c *hcase) {
			c.db("app.db", false)
			c.write("victim", []byte("precious"), 0o600)
			c.link("new.bak", "victim")
		}, args: []string{"--source", "{D}/app.db", "--backup", "{D}/new.bak"}, code: 1, want: []string{`backup "{D}/new.bak": file exists`}},
		{name: "dangling symlink planted at --backup", setup: func(c *hcase) { c.db("app.db", false); c.link("new.bak", "created-through-link") },
			args: []string{"--source", "{D}/app.db", "--backup", "{D}/new.bak"}, code: 1, want: []string{`backup "{D}/new.bak": file exists`}},
		{name: "symlinks planted at the timestamped names", setup: func(c *hcase) {
			c.db("app.db", false)
			c.write("victim", []byte("precious"), 0o600)
			c.mkdir("out", 0o700, false)
			now := time.Now()
			for s := -1; s < 8; s++ {
				c.link("out/app.db."+now.Add(time.Duration(s)*time.Second).Format("20060102_150405"), "../victim")
			}
		}, args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"integrity_check ok"}},
		{name: "symlink planted at the lock file", setup: func(c *hcase) {
			c.db("app.db", false)
			c.write("victim", []byte("precious"), 0o644)
			c.mkdir("out", 0o700, false)
			c.link("out/.sqlite-backup.lock", "../victim")
		}, args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1, want: []string{`open lock "{D}/out/.sqlite-backup.lock"`, "symbolic links"}},
		{name: "symlinked source", setup: func(c *hcase) { c.db("real.db", false); c.link("app.db", "real.db") },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/app.db.", "integrity_check ok"}},
		{name: "dangling symlink as source", setup: func(c *hcase) { c.link("app.db", "gone.db") },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out"}, code: 1, want: []string{`open source "{D}/app.db": no such file`}},
		{name: "name with spaces", setup: func(c *hcase) { c.db("my app.db", false) },
			args: []string{"--source", "{D}/my app.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/my app.db."}},
		{name: "name with quotes", setup: func(c *hcase) { c.db(`it's "q".db`, true) }, walSource: `it's "q".db`,
			args: []string{"--source", `{D}/it's "q".db`, "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{`/out/it's "q".db.`}},
		{name: "unicode name", setup: func(c *hcase) { c.db("données-日本.db", false) },
			args: []string{"--source", "{D}/données-日本.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/données-日本.db."}},
		{name: "name with ?, # and %", setup: func(c *hcase) { c.db("a?mode=rwc#x%20.db", false) },
			args: []string{"--source", "{D}/a?mode=rwc#x%20.db", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/a?mode=rwc#x%20.db."}},
		{name: "long name", setup: func(c *hcase) { c.db(long, false) },
			args: []string{"--source", "{D}/" + long, "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/" + long + "."}},
		{name: "name too long for the sidecars", setup: func(c *hcase) { c.db(tooLong, false) },
			args: []string{"--source", "{D}/" + tooLong, "--backup-dir", "{D}/out"}, code: 1,
			want: []string{`backup of "{D}/` + tooLong + `": names in "{D}/out" would be up to 258 bytes`, "file name too long", "hint: name the backup yourself"}},
		{name: "name too long for a backup name", setup: func(c *hcase) { c.db(tooLong2, false) },
			args: []string{"--source", "{D}/" + tooLong2, "--backup-dir", "{D}/out"}, code: 1, want: []string{`names in "{D}/out"`, "file name too long"}},
		{name: "--backup name too long for its sidecars", setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db", "--backup", "{D}/" + strings.Repeat("b", 220)}, code: 1, want: []string{"file name too long"}},
		{name: "DATABASE_URL is postgres", env: []string{"DATABASE_URL=postgresql://app:s3cret@db.internal/app"}, code: 1,
			want: []string{"DATABASE_URL in the environment", "is a postgresql URL", "hint: "}, mustNot: []string{"s3cret"}},
		{name: "DATABASE_URL sqlite with a host", env: []string{"DATABASE_URL=sqlite://app.db"}, code: 1,
			want: []string{`DATABASE_URL in the environment: malformed SQLite URL "sqlite://app.db"`}},
		{name: "DATABASE_URL in-memory", env: []string{"DATABASE_URL=sqlite:///:memory:"}, code: 1,
			want: []string{"DATABASE_URL in the environment", "in-memory database cannot be backed up"}},
		{name: "sqlite:/// URL to a missing file", args: []string{"--source", "sqlite:///{D}/gone.db"}, code: 1,
			want: []string{`open source`, `gone.db": no such file`}},
		{name: "file: URI with mode=rwc to a missing file", args: []string{"--source", "file:{D}/gone.db?mode=rwc"}, code: 1,
			want: []string{`open source`, `gone.db": no such file`}},
		{name: "bad percent escape in a URL", args: []string{"--source", "sqlite:///{D}/a%zz.db"}, code: 1,
			want: []string{`source from --source: malformed SQLite URL`}},
		{name: ".env with export, quotes and comments", setup: func(c *hcase) {
			c.db("data/app.db", true)
			c.write(".env", []byte("# app settings\nexport SECRET_KEY='x#y'\nexport DATABASE_URL=\"sqlite:///./data/app.db\" # main db\n\nDEBUG=1 # on\n"), 0o644)
		}, walSource: "data/app.db", args: []string{"--app-dir", "{D}", "--backup-dir", "{D}/out"}, code: 0, backups: 1, want: []string{"/out/app.db."}},
		{name: ".env with a mysql URL", setup: func(c *hcase) { c.write(".env", []byte("DATABASE_URL='mysql://root:hunter2@localhost/app'\n"), 0o644) },
			args: []string{"--app-dir", "{D}"}, code: 1, want: []string{"DATABASE_URL in {D}/.env", "is a mysql URL"}, mustNot: []string{"hunter2"}},
		{name: ".env with an unterminated quote", setup: func(c *hcase) { c.write(".env", []byte("DATABASE_URL=\"sqlite:///app.db\n"), 0o644) },
			args: []string{"--app-dir", "{D}"}, code: 1, want: []string{"{D}/.env", "line 1", "unterminated"}},
		{name: "config file with an unknown key", setup: func(c *hcase) { c.write("c.toml", []byte("# cfg\nbackup-dirs = \"/tmp\"\n"), 0o644) },
			args: []string{"--config", "{D}/c.toml", "--source", "{D}/x.db"}, code: 2, want: []string{"{D}/c.toml", "line 2", "backup-dirs"}},
		{name: "config file with a bad type", setup: func(c *hcase) { c.write("c.toml", []byte("busy-timeout = \"forever\"\n"), 0o644) },
			args: []string{"--config", "{D}/c.toml", "--source", "{D}/x.db"}, code: 2, want: []string{"{D}/c.toml", "line 1", "busy-timeout"}},
		{name: "config file missing", args: []string{"--config", "{D}/none.toml", "--source", "{D}/x.db"}, code: 2,
			want: []string{`open config "{D}/none.toml"`, "no such file"}},
		{name: "--no-verify with --quick", setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out", "--no-verify", "--quick"}, code: 2, want: []string{"--no-verify", "--quick"}},
		{name: "--backup with --backup-dir", setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db", "--backup-dir", "{D}/out", "--backup", "{D}/x.bak"}, code: 2, want: []string{"--backup FILE and --backup-dir DIR", "hint: "}},
		{name: "--verify with --source", setup: func(c *hcase) { c.db("app.db", false) },
			args: []string{"--source", "{D}/app.db", "--verify", "{D}/app.db"}, code: 2, want: []string{"--verify checks existing files"}},
		{name: "bad --busy-timeout", args: []string{"--source", "{D}/app.db", "--busy-timeout", "soon"}, code: 2, want: []string{"--busy-timeout", "soon"}},
		{name: "unknown --method", args: []string{"--source", "{D}/app.db", "--method", "copy"}, code: 2, want: []string{"--method", "copy"}},
		{name: "verify a missing file", args: []string{"verify", "{D}/nope.db"}, code: 1, want: []string{`verify "{D}/nope.db": no such file`}},
		{name: "verify a directory", setup: func(c *hcase) { c.mkdir("adir", 0o755, false) },
			args: []string{"verify", "{D}/adir"}, code: 3, want: []string{"{D}/adir: FAILED: not a regular file"}},
		{name: "verify a WAL-mode file creates nothing beside it", setup: func(c *hcase) { c.db("copy.db", true) },
			args: []string{"verify", "{D}/copy.db"}, code: 0, want: []string{"{D}/copy.db: ok"}},
		{name: "verify a -wal file", setup: func(c *hcase) { c.db("app.db", true); c.write("app.db-wal", junk(4096), 0o644) },
			args: []string{"verify", "{D}/app.db-wal"}, code: 3, want: []string{"{D}/app.db-wal: FAILED", "-wal file"}},
	}

	root := publicTempDir(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &hcase{t: t, dir: filepath.Join(root, strconv.Itoa(i))}
			if err := os.Mkdir(c.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			// A case that names no backup directory gets one of its own:
			// the default, /backup, is the host's (guard_test.go).
			o := runOpts{dir: c.dir, env: tc.env}
			if !slices.ContainsFunc(tc.args, func(a string) bool { return a == "--backup" || a == "--backup-dir" || a == "--verify" }) {
				o.env = append([]string{"SQLITE_BACKUP_BACKUP_DIR=" + filepath.Join(c.dir, "out")}, tc.env...)
			}
			bin := "sqlite-backup"
			if tc.nobody {
				bin, o.cred = asNobody(t)
				c.uid, c.gid = int(o.cred.Uid), int(o.cred.Gid)
			}
			if tc.setup != nil {
				tc.setup(c)
			}
			before := treeOf(t, c.dir)
			args := make([]string, len(tc.args))
			for j, a := range tc.args {
				args[j] = strings.ReplaceAll(a, "{D}", c.dir)
			}
			r := runCmd(t, command(t, o, bin, args...))
			after := treeOf(t, c.dir)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			msg := r.stdout + r.stderr
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "{D}", c.dir); !strings.Contains(msg, w) {
					t.Errorf("output lacks %q:\n%s", w, msg)
				}
			}
			for _, w := range tc.mustNot {
				if strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output shows %q:\n%s%s", w, r.stdout, r.stderr)
				}
			}
			if tc.code != 0 && r.stdout != "" && !strings.HasPrefix(args[0], "verify") {
				t.Errorf("a failed run printed a result: %q", r.stdout)
			}
			var sidecars []string
			if tc.walSource != "" {
				// SQLite itself creates these to read a WAL database no
				// process has open, and chowns them to the database's owner
				// so the application can still open it.
				owner := strings.Fields(before[tc.walSource])[1]
				sidecars = []string{
					"created " + tc.walSource + "-wal (-rw-r--r-- " + owner + " e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
					"created " + tc.walSource + "-shm (-rw-r--r-- " + owner + " ",
				}
			}
			checkChanges(t, before.diff(after), tc.backups, sidecars)
		})
	}
}

var (
	finalName = regexp.MustCompile(`^created out/[^/]+\.\d{8}_\d{6}(-\d+)? \(-rw------- uid=\d+ [0-9a-f]+\)$`)
	// A backup's checksum and manifest sidecars.
	sidecarName = regexp.MustCompile(`^created out/[^/]+\.\d{8}_\d{6}(-\d+)?\.(sha256|json) \(-rw------- uid=\d+ [0-9a-f]+\)$`)
)

// checkChanges allows exactly: the backup dir created 0700, its lock
// file, `backups` new private backup files in it with their two private
// sidecars each, and the WAL sidecars SQLite leaves beside an idle source.
func checkChanges(t *testing.T, d []string, backups int, walSidecars []string) {
	t.Helper()
	var got, sidecars int
next:
	for _, l := range d {
		for _, s := range walSidecars {
			if strings.HasPrefix(l, s) {
				continue next
			}
		}
		switch {
		case strings.HasPrefix(l, "created out (drwx------ "):
		case strings.HasPrefix(l, "created out/.sqlite-backup.lock (-rw"):
		case finalName.MatchString(l):
			got++
		case sidecarName.MatchString(l):
			sidecars++
		default:
			t.Errorf("unexpected change: %s", l)
		}
	}
	if sidecars != 2*got {
		t.Errorf("%d sidecar files for %d backups, want a .sha256 and a .json each", sidecars, got)
	}
	if got != backups {
		t.Errorf("%d new backup files, want %d; changes:\n%s", got, backups, strings.Join(d, "\n"))
	}
}
