package snapshot

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/lock"
	"sqlite-backup/internal/testdb"
	"sqlite-backup/verify"
)

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// names lists dir, leaving out the lock file every run keeps there.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != lock.Name {
			out = append(out, e.Name())
		}
	}
	return out
}

func fixedClock() func() time.Time {
	at := time.Date(2026, 11, 27, 2, 0, 0, 0, time.Local)
	return func() time.Time { return at }
}

func TestBackupOfLiveWAL(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	// The "application" keeps its connection open with frames in the WAL
	// that are not checkpointed: the backup must include them and must not
	// checkpoint them.
	app := testdb.Open(t, src, testdb.Options{WAL: true, Rows: 100})
	defer app.Close()
	if _, err := app.Exec("PRAGMA wal_autocheckpoint=0"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec("INSERT INTO t(v) SELECT v FROM t"); err != nil {
		t.Fatal(err)
	}
	dbSum, walSum := sum(t, src), sum(t, src+"-wal")

	out := filepath.Join(dir, "out")
	res, err := Run(context.Background(), Options{Source: src, Dir: out, Now: fixedClock(), BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "app.db.20261127_020000"); res.Path != want {
		t.Errorf("path %s, want %s", res.Path, want)
	}
	if !res.SourceWAL || res.Verify != "ok" || res.Pages == 0 || res.PageSize != 4096 {
		t.Errorf("result %+v", res)
	}
	if n := testdb.Count(t, res.Path, "t"); n != 200 {
		t.Errorf("backup holds %d rows, want 200 (the WAL frames too)", n)
	}
	if sum(t, src) != dbSum || sum(t, src+"-wal") != walSum {
		t.Error("the source or its -wal changed")
	}
	// One self-contained rollback-journal file, private, nothing beside it.
	f, err := os.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := sqlitefile.ReadHeader(f)
	f.Close()
	if err != nil || h.WAL {
		t.Errorf("backup header: %+v, %v; want rollback journal", h, err)
	}
	fi, err := os.Stat(res.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, %v", fi.Mode(), err)
	}
	if di, err := os.Stat(out); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("created dir mode %v, %v", di.Mode(), err)
	}
	if got := names(t, out); len(got) != 1 {
		t.Errorf("backup dir holds %q, want only the backup", got)
	}

	// Same second again: a new name, the first backup untouched.
	first := sum(t, res.Path)
	res2, err := Run(context.Background(), Options{Source: src, Dir: out, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Path != res.Path+"-2" || sum(t, res.Path) != first {
		t.Errorf("second backup %s; first changed: %v", res2.Path, sum(t, res.Path) != first)
	}
}

func TestBackupMethods(t *testing.T) {
	for _, m := range []Method{MethodBackup, MethodVacuum} {
		for _, wal := range []bool{false, true} {
			t.Run(string(m)+map[bool]string{true: "-wal", false: "-rollback"}[wal], func(t *testing.T) {
				dir := t.TempDir()
				src := filepath.Join(dir, "app.db")
				testdb.Create(t, src, testdb.Options{WAL: wal, Rows: 300, BlobSize: 5000}) // overflow pages
				before := sum(t, src)
				dst := filepath.Join(dir, "copy.db")
				res, err := Run(context.Background(), Options{Source: src, Path: dst, Method: m, Verify: VerifyQuick})
				if err != nil {
					t.Fatal(err)
				}
				if res.Path != dst || res.Check != VerifyQuick || res.Pages == 0 {
					t.Errorf("result %+v", res)
				}
				if n := testdb.Count(t, dst, "t"); n != 300 {
					t.Errorf("%d rows, want 300", n)
				}
				if sum(t, src) != before {
					t.Error("source changed")
				}
				if v, err := verify.File(context.Background(), dst, verify.Options{}); err != nil || !v.OK {
					t.Errorf("verify: %+v %v", v, err)
				}
			})
		}
	}
}

func TestBackupRefuses(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 10})
	exists := filepath.Join(dir, "exists.db")
	if err := os.WriteFile(exists, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "text.db"), []byte(strings.Repeat("hello ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"-wal", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no source", Options{Dir: dir}, "no source database given"},
		{"missing source", Options{Source: filepath.Join(dir, "missing.db"), Dir: dir}, `open source "` + filepath.Join(dir, "missing.db") + `": no such file`},
		{"directory source", Options{Source: dir, Dir: dir}, "not a regular file"},
		{"empty source", Options{Source: filepath.Join(dir, "empty.db"), Dir: dir}, "empty file (0 bytes)"},
		{"text source", Options{Source: filepath.Join(dir, "text.db"), Dir: dir}, "not a SQLite database"},
		{"wal as source", Options{Source: src + "-wal", Dir: dir}, "is SQLite's -wal file, not a database"},
		{"existing target", Options{Source: src, Path: exists}, "file exists; refusing to overwrite it"},
		{"target is source", Options{Source: src, Path: src}, "that is the source database itself"},
		{"target is source wal", Options{Source: src, Path: src + "-wal"}, "that is the source database-wal itself"},
		{"dir is a file", Options{Source: src, Dir: filepath.Join(dir, "file")}, "not a directory"},
		{"target dir missing", Options{Source: src, Path: filepath.Join(dir, "nope", "x.db")}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := names(t, dir)
			_, err := Run(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if after := names(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("directory changed: %q -> %q", before, after)
			}
		})
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep me" {
		t.Error("existing file was changed")
	}
}

func TestBackupLockedRollbackSource(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	app := testdb.Open(t, src, testdb.Options{Rows: 10})
	defer app.Close()
	tx, err := app.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// An exclusive lock in rollback mode keeps readers out until commit.
	if _, err := tx.Exec("PRAGMA locking_mode=NORMAL"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("DELETE FROM t WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("PRAGMA cache_size=0"); err != nil { // spill: forces the EXCLUSIVE lock
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t(v) SELECT randomblob(100000) FROM t"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	_, err = Run(context.Background(), Options{Source: src, Dir: out, BusyTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "database is locked") || !strings.Contains(hint.Of(err), "--busy-timeout") {
		t.Fatalf("error %v (hint %q), want database is locked with a --busy-timeout hint", err, hint.Of(err))
	}
	if got := names(t, out); len(got) != 0 {
		t.Errorf("left behind: %q", got)
	}
}

func TestBackupCorruptSourceFailsVerification(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 400, BlobSize: 300})
	fi, _ := os.Stat(src)
	testdb.Corrupt(t, src, int(fi.Size()/4096/2), 4096)
	out := filepath.Join(dir, "out")
	_, err := Run(context.Background(), Options{Source: src, Dir: out})
	var vf *verify.FailedError
	if !errors.As(err, &vf) {
		t.Fatalf("error %v, want a verification failure", err)
	}
	if !strings.Contains(hint.Of(err), "sqlite-backup verify") {
		t.Errorf("hint %q does not suggest verifying the source", hint.Of(err))
	}
	if got := names(t, out); len(got) != 0 {
		t.Errorf("a failed backup left %q", got)
	}
	// --no-verify publishes it, and says it did not check.
	res, err := Run(context.Background(), Options{Source: src, Dir: out, Verify: VerifyNone})
	if err != nil || res.Verify != "skipped" {
		t.Fatalf("no-verify: %+v %v", res, err)
	}
}

func TestBackupCanceledMidCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	// More pages than one step, so cancellation lands between steps.
	testdb.Create(t, src, testdb.Options{WAL: true, Rows: 3 * stepPages, BlobSize: 3000})
	defer func(n int) { sendChunkBytes = n }(sendChunkBytes)
	sendChunkBytes = chunkBytes // several rounds of the kernel copy too
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	_, err := Run(ctx, Options{Source: src, Dir: out, Progress: func(done, total int) {
		steps++
		if done < total {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if steps == 0 {
		t.Fatal("progress was never reported")
	}
	if got := names(t, out); len(got) != 0 {
		t.Errorf("canceled run left %q", got)
	}
}

func TestStaleTempsRemovedUnderLock(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 10})
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(out, TempPrefix+"app.db-0123456789ab")
	lookalike := filepath.Join(out, "sqlite-backup-tmp-app.db")
	for _, p := range []string{stale, stale + "-journal", lookalike} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// While another run holds the lock, nothing is touched and the error
	// names the holder.
	held, err := lock.Acquire(context.Background(), out, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Source: src, Dir: out})
	if !errors.Is(err, lock.ErrBusy) || !strings.Contains(err.Error(), "(pid ") {
		t.Fatalf("error %v, want lock busy naming the pid", err)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatal("stale temp removed while another run held the lock")
	}
	held.Release()

	if _, err := Run(context.Background(), Options{Source: src, Dir: out, Now: fixedClock()}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(names(t, out), ",")
	if want := "app.db.20261127_020000,sqlite-backup-tmp-app.db"; got != want {
		t.Errorf("dir holds %s, want %s", got, want)
	}
}

// TestCheckLeavesACoreToAWriter: the full check of the copy takes every
// core when the source stood still, and one when the application
// committed while the backup ran.
func TestCheckLeavesACoreToAWriter(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: the check always runs on one")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	// Above verify's size for a parallel check (64 MiB).
	app := testdb.Open(t, src, testdb.Options{WAL: true, Rows: 17000, BlobSize: 4096})
	defer app.Close()
	if _, err := app.Exec("CREATE INDEX t_v ON t(v)"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	idle, err := Run(context.Background(), Options{Source: src, Dir: out})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := Run(context.Background(), Options{Source: src, Dir: out, Snapshot: func(ctx context.Context, _ *sql.Conn) error {
		_, err := app.ExecContext(ctx, "INSERT INTO t(v) VALUES (randomblob(10))")
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	if idle.CheckThreads != 2 || busy.CheckThreads != 1 {
		t.Fatalf("check threads: %d with the source idle (want 2), %d with a commit during the copy (want 1)", idle.CheckThreads, busy.CheckThreads)
	}
	if runtime.GOMAXPROCS(0) < 2 {
		t.Fatal("GOMAXPROCS was not given back")
	}
}

// A backup is named by the instant its copy began (what it holds), not
// by when it was published after the check: the clock moves 10 s at each
// phase, as a large database's copy and check would.
func TestNamedBySnapshotTime(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 100})
	t0 := time.Date(2026, 11, 27, 0, 35, 46, 0, time.Local)
	phases := 0
	res, err := Run(context.Background(), Options{
		Source: src, Dir: filepath.Join(dir, "out"), Compress: compress.Zstd,
		Now:   func() time.Time { return t0.Add(time.Duration(phases) * 10 * time.Second) },
		Phase: func(string) { phases++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Phases: copy (clock 00:35:56, read as the copy begins), verify,
	// compress (00:36:16 by the time it is published).
	if want := filepath.Join(dir, "out", "app.db.20261127_003556.zst"); res.Path != want {
		t.Errorf("published as %s, want %s (named when the copy began)", filepath.Base(res.Path), filepath.Base(want))
	}
	if want := t0.Add(10 * time.Second); !res.Started.Equal(want) {
		t.Errorf("started %v, want %v, the time in the name", res.Started, want)
	}
}
