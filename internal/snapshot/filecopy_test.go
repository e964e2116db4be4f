package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/testdb"
)

// TestFileCopy: in every state a source can be in, the file copy is
// used and its copy holds exactly the pages SQLite reads for the
// snapshot (every page compared through sqlite_dbpage), is a rollback-
// journal file the C CLI finds sound, and its recorded hash is the hash
// of the file.
func TestFileCopy(t *testing.T) {
	type state struct {
		name string
		opts testdb.Options
		// app runs on the application's connection, which stays open
		// during the backup so its WAL is not checkpointed away.
		app []string
	}
	grow := []string{
		"PRAGMA wal_autocheckpoint=0",
		"INSERT INTO t(v) SELECT randomblob(500) FROM t",
		"CREATE TABLE u(x)", // page 1 changes in the WAL
		"UPDATE t SET v = randomblob(50) WHERE id % 3 = 0",
		"DELETE FROM t WHERE id % 5 = 0", // free pages
	}
	states := []state{
		{"rollback journal", testdb.Options{Rows: 3000}, nil},
		{"rollback journal, 512-byte pages", testdb.Options{Rows: 500, PageSize: 512}, nil},
		{"WAL, empty", testdb.Options{WAL: true, Rows: 3000}, nil},
		{"WAL, frames not checkpointed", testdb.Options{WAL: true, Rows: 3000}, grow},
		{"WAL, frames not checkpointed, 64 KiB pages", testdb.Options{WAL: true, Rows: 3000, PageSize: 65536}, grow},
		{"WAL, all frames checkpointed", testdb.Options{WAL: true, Rows: 3000}, append(grow[1:len(grow):len(grow)], "PRAGMA wal_checkpoint(PASSIVE)")},
		{"WAL, shrunk by VACUUM in the WAL", testdb.Options{WAL: true, Rows: 3000}, []string{
			"PRAGMA wal_autocheckpoint=0", "DELETE FROM t WHERE id > 100", "VACUUM"}},
	}
	defer func(v bool) { noKernelCopy = v }(noKernelCopy)
	for _, kernel := range []bool{true, false} {
		noKernelCopy = !kernel
		for _, st := range states {
			name := st.name
			if !kernel {
				name += ", read and write"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				src := filepath.Join(dir, "app.db")
				testdb.Create(t, src, st.opts)
				if st.app != nil {
					app := testdb.Open(t, src, testdb.Options{WAL: st.opts.WAL})
					defer app.Close()
					for _, s := range st.app {
						if _, err := app.Exec(s); err != nil {
							t.Fatalf("%s: %v", s, err)
						}
					}
				}
				out := filepath.Join(dir, "copy.db")
				planned.Lock()
				inKernel := planned.m["copied in the kernel"]
				planned.Unlock()
				res, err := Run(context.Background(), Options{Source: src, Path: out, BusyTimeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				if res.Copier != CopierFile || res.FileCopySkipped != "" {
					t.Fatalf("copier %q (skipped: %s), want the file copy", res.Copier, res.FileCopySkipped)
				}
				planned.Lock()
				byKernel := planned.m["copied in the kernel"] > inKernel
				planned.Unlock()
				if byKernel != (kernel && runtime.GOOS == "linux") {
					t.Fatalf("copied in the kernel: %v", byKernel)
				}
				if sum, err := manifest.FileSHA256(out); err != nil || sum != res.SHA256 {
					t.Fatalf("file hash %s (%v), recorded %s", sum, err, res.SHA256)
				}
				samePages(t, src, out)
				if got := cli(t, out, "pragma integrity_check"); got != "ok" {
					t.Fatalf("integrity_check: %s", got)
				}
				if got := cli(t, out, "pragma journal_mode"); got != "delete" {
					t.Fatalf("journal_mode %q", got)
				}
				if got, want := testdb.Count(t, out, "t"), testdb.Count(t, src, "t"); got != want {
					t.Fatalf("copy has %d rows, source %d", got, want)
				}
			})
		}
	}
}

// samePages compares every page of copy with what SQLite reads for src
// now (its writers are idle): equal but for the journal-mode bytes.
func samePages(t *testing.T, src, copy string) {
	t.Helper()
	uri, _ := sqlitefile.URI(src, map[string][]string{"mode": {"ro"}})
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	f, err := os.ReadFile(copy)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var pg int64
		var data []byte
		if err := rows.Scan(&pg, &data); err != nil {
			t.Fatal(err)
		}
		if pg == 1 {
			if err := markRollback(data); err != nil {
				t.Fatal(err)
			}
		}
		ps := int64(len(data))
		if pg*ps > int64(len(f)) || !bytes.Equal(f[(pg-1)*ps:pg*ps], data) {
			t.Fatalf("page %d of the copy differs from the source's snapshot", pg)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 || int64(len(f)) != int64(n)*int64(len(f)/n) || len(f)%n != 0 {
		t.Fatalf("copy is %d bytes for %d pages", len(f), n)
	}
}

// TestFileCopyFallback: where the file copy cannot be used (switched
// off), or its copy is found unlike SQLite's view by the spot check (the
// copy is then thrown away), the backup API copies the same snapshot; the
// result says so and reports no hash of a discarded copy.
func TestFileCopyFallback(t *testing.T) {
	for _, c := range []struct {
		name   string
		flag   *bool
		reason string
	}{
		{"switched off", &noFileCopy, "the file copy is switched off"},
		{"spot check fails", &failSpotCheck, "spot check: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func(v bool) { *c.flag = v }(*c.flag)
			*c.flag = true
			dir := t.TempDir()
			src := filepath.Join(dir, "app.db")
			testdb.Create(t, src, testdb.Options{WAL: true, Rows: 2000})
			app := testdb.Open(t, src, testdb.Options{WAL: true})
			defer app.Close()
			if _, err := app.Exec("PRAGMA wal_autocheckpoint=0; INSERT INTO t(v) SELECT randomblob(300) FROM t"); err != nil {
				t.Fatal(err)
			}
			// With and without a commit during the copy, which sends the
			// snapshot's hook after it: either way the hook runs once, in
			// the snapshot the backup API then copies.
			for _, write := range []bool{false, true} {
				out := filepath.Join(dir, fmt.Sprintf("copy-%v.db", write))
				want := testdb.Count(t, src, "t")
				hooks, counted, committed := 0, 0, false
				res, err := Run(context.Background(), Options{Source: src, Path: out,
					Progress: func(done, total int) {
						if write && !committed {
							committed = true
							if _, err := app.Exec("INSERT INTO t(v) VALUES (randomblob(100))"); err != nil {
								t.Error(err)
							}
						}
					},
					Snapshot: func(ctx context.Context, conn *sql.Conn) error {
						hooks++
						return conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&counted)
					}})
				if err != nil {
					t.Fatal(err)
				}
				if res.Copier != CopierAPI || !strings.HasPrefix(res.FileCopySkipped, c.reason) || res.SHA256 != "" {
					t.Fatalf("copier %q, skipped %q, sha256 %q: want the backup API, %q and no hash", res.Copier, res.FileCopySkipped, res.SHA256, c.reason)
				}
				if write && !committed {
					t.Fatal("the copy reported no progress, so nothing was written during it")
				}
				// The backup API's page 1 has its own change counter:
				// compare content, not pages.
				if got := testdb.Count(t, out, "t"); got != want || got <= 4000 {
					t.Fatalf("write %v: copy has %d rows, want the snapshot's %d, over 4000", write, got, want)
				}
				if hooks != 1 || counted != want {
					t.Fatalf("write %v: the snapshot's hook ran %d times and counted %d rows, want once and %d", write, hooks, counted, want)
				}
				if got := cli(t, out, "pragma integrity_check; pragma journal_mode"); got != "ok\ndelete" {
					t.Fatalf("copy: %q", got)
				}
			}
		})
	}
}

// TestFileCopyKeepsLocks: while the file copy reads a rollback-journal
// source, a writer in another process must still be kept out. It fails
// if the copy ran outside the read transaction, or if a descriptor of the
// source were closed before or during the copy (closing any descriptor
// drops the process's POSIX locks on the file); a close after the copy,
// but before SQLite's connection, is beyond what it can see.
func TestFileCopyKeepsLocks(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("needs the sqlite3 CLI: scripts/install-deps.sh installs it")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 3000})
	out := filepath.Join(dir, "copy.db")
	var during string
	_, err := Run(context.Background(), Options{
		Source: src, Path: out, Verify: VerifyNone,
		Progress: func(done, total int) {
			if during == "" {
				// A second process tries to write with no patience.
				during = cliErr(src, "PRAGMA busy_timeout=0; INSERT INTO t(v) VALUES(1)")
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if during == "" || !bytes.Contains([]byte(during), []byte("locked")) {
		t.Fatalf("a writer got in during the copy (sqlite3 said %q): the source's lock was lost", during)
	}
}

// cliErr runs the C CLI and returns what it printed, error or not.
func cliErr(db, sql string) string {
	out, _ := exec.Command("sqlite3", db, sql).CombinedOutput()
	return string(out)
}

// TestReadPagesBeyondTheFile: a database growing in its WAL past 1 GiB
// has a pending-byte page that no file holds; SQLite reads it as zeros.
// Any other page in neither file is not a snapshot the plan foresaw.
func TestReadPagesBeyondTheFile(t *testing.T) {
	const ps = 65536
	db := filepath.Join(t.TempDir(), "short.db")
	if err := os.WriteFile(db, bytes.Repeat([]byte{7}, ps), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := &sourceFiles{path: db, db: f}
	pending := pendingBytePage(ps)
	plan := &filePlan{pageSize: ps, pages: pending + 1}
	buf := bytes.Repeat([]byte{9}, ps)
	if err := readPages(files, plan, pending, buf); err != nil || !bytes.Equal(buf, make([]byte, ps)) {
		t.Fatalf("pending-byte page: err %v, zeroed %v", err, bytes.Equal(buf, make([]byte, ps)))
	}
	var ep *errPlan
	if err := readPages(files, plan, pending+1, buf); !errors.As(err, &ep) {
		t.Fatalf("a page in neither file: err %v, want an errPlan", err)
	}
	if err := readPages(files, plan, 1, buf); err != nil || buf[0] != 7 {
		t.Fatalf("page 1: err %v", err)
	}
}

// TestSpotCheckCatches: a copy with one byte wrong in a page the spot
// check always reads (the last) is reported; the right copy is not.
func TestSpotCheckCatches(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 3000})
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := sqlitefile.URI(src, map[string][]string{"mode": {"ro"}})
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(context.Background(), "BEGIN; SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	plan := &filePlan{pageSize: ps, pages: int64(len(data) / ps)}
	good := filepath.Join(dir, "good.db")
	if err := os.WriteFile(good, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := spotCheck(context.Background(), conn, plan, good); err != nil {
		t.Fatalf("a true copy: %v", err)
	}
	data[len(data)-100] ^= 1
	bad := filepath.Join(dir, "bad.db")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := spotCheck(context.Background(), conn, plan, bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("page %d", plan.pages)) {
		t.Fatalf("a copy with the last page changed: err %v", err)
	}
}

// TestFileCopyWriteFails: a destination that refuses more bytes (here
// the process's file size limit, which is per process and so set for
// this test alone) ends either copy path with the operator's message,
// before any page is copied (the blocks are reserved first) and with
// nothing left behind.
func TestFileCopyWriteFails(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 8000, BlobSize: 1000}) // ~9 MB
	defer func(v bool) { noKernelCopy = v }(noKernelCopy)
	for _, kernel := range []bool{true, false} {
		noKernelCopy = !kernel
		out := filepath.Join(dir, fmt.Sprintf("out-%v", kernel))
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
		lim := old
		lim.Cur = 2 << 20
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		copied := 0
		_, err := Run(context.Background(), Options{Source: src, Dir: out, Verify: VerifyNone,
			Progress: func(done, total int) { copied = done }})
		syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
		// The blocks are reserved first: nothing is copied in vain.
		if runtime.GOOS == "linux" && copied != 0 {
			t.Errorf("kernel copy %v: %d pages copied before the limit was found", kernel, copied)
		}
		if err == nil {
			t.Fatalf("kernel copy %v: a backup past the file size limit succeeded", kernel)
		}
		for _, want := range []string{`write backup in "` + out + `"`, "partial copy was removed", "ulimit -f"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("kernel copy %v: error lacks %q: %v", kernel, want, err)
			}
		}
		if got := names(t, out); len(got) != 0 {
			t.Errorf("kernel copy %v: left %v", kernel, got)
		}
	}
}

// TestFileCopyRounds copies a planned snapshot of a little more than one
// default round (64 MiB plus 303 pages, so no round size divides it),
// with WAL images on page 1, on both sides of the first round boundary
// and on six pages past the database file's end, at the default round
// size and at a three-page one. The copy must equal the planned image
// byte for byte, page 1 marked rollback-journal, and the follower hash
// must be the copy's SHA-256.
func TestFileCopyRounds(t *testing.T) {
	const ps = 4096
	filePages := int64(sendChunkBytes/ps + 303)
	data := make([]byte, filePages*ps)
	for i := range data {
		data[i] = byte(i*7 + i/ps)
	}
	copy(data, sqlitefile.Magic)
	data[16], data[17] = ps>>8, ps&0xff
	data[18], data[19] = 2, 2 // WAL

	dir := t.TempDir()
	db, wal := filepath.Join(dir, "app.db"), filepath.Join(dir, "app.db-wal")
	want := make([]byte, (filePages+6)*ps)
	copy(want, data)
	var walData []byte
	frames := map[uint32]int64{}
	boundary := int64(sendChunkBytes / ps)
	for _, p := range []int64{1, 2, boundary - 1, boundary, boundary + 1, boundary + 2, filePages,
		filePages + 1, filePages + 2, filePages + 3, filePages + 4, filePages + 5, filePages + 6} {
		img := bytes.Repeat([]byte{byte(p), byte(p >> 8), 0xa5}, ps/3+1)[:ps]
		if p == 1 {
			copy(img, data[:100]) // the header, as a WAL image of page 1 has it
		}
		frames[uint32(p)] = int64(len(walData))
		walData = append(walData, img...)
		copy(want[(p-1)*ps:], img)
	}
	want[18], want[19] = 1, 1
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wal, walData, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, round := range []int{sendChunkBytes, 3 * ps} {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			defer func(n int) { sendChunkBytes = n }(sendChunkBytes)
			sendChunkBytes = round
			planned.Lock()
			clear(planned.m)
			planned.Unlock()
			files := openSourceFiles(db)
			defer files.Close()
			if _, err := files.openWAL(); files.db == nil || err != nil {
				t.Fatalf("open the source files: %v", err)
			}
			plan := &filePlan{pageSize: ps, pages: filePages + 6, frames: frames}
			out := filepath.Join(t.TempDir(), "copy.db")
			if err := os.WriteFile(out, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			calls := 0
			h, err := copyFile(context.Background(), files, plan, out, func(done, total int) { calls++ }, true, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := h.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("copy differs from the planned image from byte %d (page %d); sizes %d and %d", i, i/ps+1, len(got), len(want))
			}
			if h := sha256.Sum256(got); hex.EncodeToString(h[:]) != sum {
				t.Errorf("follower hash %s, file's SHA-256 %x", sum, h)
			}
			if wantCalls := (int(plan.pages)*ps + round - 1) / round; calls != wantCalls && runtime.GOOS == "linux" {
				t.Errorf("%d progress calls, want one per round: %d", calls, wantCalls)
			}
			planned.Lock()
			plans := maps.Clone(planned.m)
			planned.Unlock()
			if runtime.GOOS == "linux" && plans["copied in the kernel"] != 1 {
				t.Errorf("plans %v: this test is of the kernel copy", plans)
			}
		})
	}
}
