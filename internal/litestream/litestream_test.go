package litestream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// writeLTX writes one LTX file of a replica in dir: the pages of db
// (its whole content, pages 1..len/ps) that differ from prev (nil: all).
func writeLTX(t *testing.T, dir string, level int, min, max ltx.TXID, prev, db []byte, ps int, ts time.Time) string {
	t.Helper()
	p := filepath.Join(dir, "ltx", fmt.Sprint(level), ltx.FormatFilename(min, max))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	commit := uint32(len(db) / ps)
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: uint32(ps), Commit: commit, MinTXID: min, MaxTXID: max, Timestamp: ts.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	lock := ltx.LockPgno(uint32(ps))
	for pg := uint32(1); pg <= commit; pg++ {
		page := db[int(pg-1)*ps : int(pg)*ps]
		if pg == lock || prev != nil && int(pg)*ps <= len(prev) && bytes.Equal(page, prev[int(pg-1)*ps:int(pg)*ps]) {
			continue
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pg}, page); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, ts, ts); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is a replica of three states of a real database: TXID 1 a
// snapshot (level 9 and level 0), 2 an update that grows it, 3 a
// delete and VACUUM that shrinks it; level 1 holds 2-3.
type fixture struct {
	dir    string
	states [][]byte // states[i] is TXID i+1
	times  []time.Time
	files  map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	work := t.TempDir()
	db := filepath.Join(work, "app.db")
	testdb.Create(t, db, testdb.Options{Rows: 400})
	f := &fixture{dir: filepath.Join(work, "replica"), files: map[string]string{}}
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	step := func(sql string) {
		if sql != "" {
			h := testdb.Open(t, db, testdb.Options{})
			for _, s := range strings.Split(sql, ";") {
				if _, err := h.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			h.Close()
		}
		f.states = append(f.states, readFile(t, db))
		f.times = append(f.times, t0.Add(time.Duration(len(f.states))*time.Minute))
	}
	step("")
	step("UPDATE t SET v = randomblob(300) WHERE id % 7 = 0; INSERT INTO t(v) SELECT randomblob(500) FROM t WHERE id < 200")
	step("DELETE FROM t WHERE id % 2 = 0; VACUUM")
	ps := 4096
	f.files["9/1"] = writeLTX(t, f.dir, 9, 1, 1, nil, f.states[0], ps, f.times[0])
	f.files["0/1"] = writeLTX(t, f.dir, 0, 1, 1, nil, f.states[0], ps, f.times[0])
	f.files["0/2"] = writeLTX(t, f.dir, 0, 2, 2, f.states[0], f.states[1], ps, f.times[1])
	f.files["0/3"] = writeLTX(t, f.dir, 0, 3, 3, f.states[1], f.states[2], ps, f.times[2])
	if len(f.states[2]) >= len(f.states[1]) {
		t.Fatalf("the VACUUM did not shrink the database: %d -> %d bytes", len(f.states[1]), len(f.states[2]))
	}
	return f
}

func open(t *testing.T, dir string) *Replica {
	t.Helper()
	r, err := Open(context.Background(), dir, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// compact is Litestream's restore of a plan: ltx's compactor merges the
// files into one LTX stream that is decoded as a database.
func compact(t *testing.T, r *Replica, plan []File) []byte {
	t.Helper()
	var rdrs []io.Reader
	for _, f := range plan {
		rdrs = append(rdrs, bytes.NewReader(readFile(t, filepath.Join(r.Location, f.Name()))))
	}
	var lt bytes.Buffer
	c, err := ltx.NewCompactor(&lt, rdrs)
	if err != nil {
		t.Fatal(err)
	}
	c.HeaderFlags = ltx.HeaderFlagNoChecksum
	if err := c.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	var db bytes.Buffer
	if err := ltx.NewDecoder(&lt).DecodeDatabaseTo(&db); err != nil {
		t.Fatal(err)
	}
	return db.Bytes()
}

// Every point restores to the database as it was, byte for byte, and to
// what ltx's compactor (Litestream's restore) makes of the same files;
// by TXID and by time.
// piped runs test twice: each file decoded as the merge reads it, and
// every file decoded by a goroutine of its own in batches of 3 pages.
func piped(t *testing.T, test func(t *testing.T)) {
	t.Run("inline", test)
	t.Run("piped", func(t *testing.T) {
		defer func(m int64, b int) { pipeMin, pipeBatch = m, b }(pipeMin, pipeBatch)
		pipeMin, pipeBatch = 0, 3*4096
		test(t)
	})
}

func TestRestoreEveryPoint(t *testing.T) { piped(t, testRestoreEveryPoint) }

func testRestoreEveryPoint(t *testing.T) {
	f := newFixture(t)
	r := open(t, f.dir)
	for i, want := range f.states {
		txid := ltx.TXID(i + 1)
		for _, o := range []Options{{TXID: txid}, {At: f.times[i].Add(time.Second)}} {
			o.Keep, o.TempDir = true, t.TempDir()
			m, err := r.Restore(context.Background(), o)
			if err != nil {
				t.Fatalf("restore %+v: %v", o, err)
			}
			got := readFile(t, m.Path)
			m.Release()
			if m.TXID != txid || !bytes.Equal(got, want) {
				t.Fatalf("restore %+v: TXID %s, %d bytes; want TXID %s, the %d bytes of the database then", o, m.TXID, len(got), txid, len(want))
			}
			plan, err := r.Plan(o.TXID, o.At)
			if err != nil {
				t.Fatal(err)
			}
			if lib := compact(t, r, plan); !bytes.Equal(lib, got) {
				t.Fatalf("restore %+v differs from ltx's compactor on the same files", o)
			}
			if !m.Check.OK || m.Check.Check != "integrity_check" {
				t.Fatalf("check: %+v", m.Check)
			}
		}
	}
	// The newest point, no options.
	m, err := r.Restore(context.Background(), Options{Keep: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if !bytes.Equal(readFile(t, m.Path), f.states[2]) || strings.Join(m.Files, " ") != "ltx/9/0000000000000001-0000000000000001.ltx ltx/0/0000000000000002-0000000000000002.ltx ltx/0/0000000000000003-0000000000000003.ltx" {
		t.Fatalf("newest point: files %v", m.Files)
	}
}

// Litestream's S3 client keeps a level in <level as %04x>/, not
// ltx/<level>/: the same replica in that layout restores the same.
func TestObjectStoreLayout(t *testing.T) {
	f := newFixture(t)
	for _, l := range []int{0, 9} {
		if err := os.Rename(filepath.Join(f.dir, "ltx", fmt.Sprint(l)), filepath.Join(f.dir, fmt.Sprintf("%04x", l))); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(f.dir, "ltx"))
	r := open(t, f.dir)
	m, err := r.Restore(context.Background(), Options{TXID: 2, Keep: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if !bytes.Equal(readFile(t, m.Path), f.states[1]) || m.Files[0] != "0009/0000000000000001-0000000000000001.ltx" {
		t.Fatalf("files %v", m.Files)
	}
}

func TestNotAReplica(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(context.Background(), dir, remote.Options{}); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("empty dir: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "ltx", "0"), 0o755)
	os.WriteFile(filepath.Join(dir, "ltx", "0", "notes.txt"), nil, 0o644)
	if _, err := Open(context.Background(), dir, remote.Options{}); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("ltx/0 without LTX files: %v", err)
	}
}

func fl(level int, min, max ltx.TXID) File {
	return File{Level: level, MinTXID: min, MaxTXID: max, Created: time.Unix(int64(max), 0)}
}

// Plan picks the files Litestream's CalcRestorePlan picks.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []File
		txid  ltx.TXID
		want  string // file names joined, or "error: …"
	}{
		{"snapshot then level 0", []File{fl(9, 1, 3), fl(0, 1, 1), fl(0, 2, 2), fl(0, 3, 3), fl(0, 4, 4), fl(0, 5, 5)}, 0, "9:1-3 0:4-4 0:5-5"},
		{"longest reach across levels", []File{fl(9, 1, 2), fl(0, 3, 3), fl(0, 4, 4), fl(1, 3, 4), fl(0, 5, 5)}, 0, "9:1-2 1:3-4 0:5-5"},
		{"a higher level wins a tie", []File{fl(9, 1, 2), fl(0, 3, 4), fl(2, 3, 4)}, 0, "9:1-2 2:3-4"},
		{"by TXID stops there", []File{fl(9, 1, 2), fl(0, 3, 3), fl(0, 4, 4), fl(1, 3, 4)}, 3, "9:1-2 0:3-3"},
		{"by TXID, a snapshot after it is skipped", []File{fl(9, 1, 2), fl(9, 1, 6), fl(0, 3, 3)}, 3, "9:1-2 0:3-3"},
		{"no snapshot: level files from TXID 1", []File{fl(0, 1, 1), fl(0, 2, 2)}, 0, "0:1-1 0:2-2"},
		{"a gap fails the newest", []File{fl(9, 1, 2), fl(0, 3, 3), fl(0, 5, 5)}, 0, "error: TXIDs 0000000000000004 to 0000000000000004 are in no file"},
		{"a gap leaves older points", []File{fl(9, 1, 2), fl(0, 3, 3), fl(0, 5, 5)}, 3, "9:1-2 0:3-3"},
		{"TXID behind a gap", []File{fl(9, 1, 2), fl(0, 3, 3), fl(0, 5, 5)}, 5, "error: no restorable point"},
		{"TXID not the end of a file", []File{fl(9, 1, 2), fl(1, 3, 6)}, 4, "error: no restorable point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Replica{Levels: map[int][]File{}}
			for _, f := range tc.files {
				r.Levels[f.Level] = append(r.Levels[f.Level], f)
			}
			plan, err := r.Plan(tc.txid, time.Time{})
			var got []string
			for _, f := range plan {
				got = append(got, fmt.Sprintf("%d:%d-%d", f.Level, f.MinTXID, f.MaxTXID))
			}
			s := strings.Join(got, " ")
			if err != nil {
				s = "error: " + err.Error()
			}
			if !strings.HasPrefix(s, tc.want) {
				t.Fatalf("got %q, want %q", s, tc.want)
			}
		})
	}
}

// failedOn asserts a failed verification naming file.
func failedOn(t *testing.T, err error, file string) {
	t.Helper()
	var fe *verify.FailedError
	if !errors.As(err, &fe) {
		t.Fatalf("want a failed verification naming %s, got %v", file, err)
	}
	if !strings.HasSuffix(fe.Result.Path, file) {
		t.Fatalf("failed verification names %q, want %s: %v", fe.Result.Path, file, err)
	}
}

func TestDamage(t *testing.T) { piped(t, testDamage) }

func testDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(f *fixture)
		txid   ltx.TXID
		file   string
	}{
		{"flipped byte in a page", func(f *fixture) {
			b := readFile(t, f.files["0/2"])
			b[ltx.HeaderSize+200] ^= 0x40
			os.WriteFile(f.files["0/2"], b, 0o644)
		}, 0, "ltx/0/0000000000000002-0000000000000002.ltx"},
		{"flipped byte in the trailer", func(f *fixture) {
			b := readFile(t, f.files["0/3"])
			b[len(b)-3] ^= 1
			os.WriteFile(f.files["0/3"], b, 0o644)
		}, 0, "ltx/0/0000000000000003-0000000000000003.ltx"},
		{"missing file: a TXID gap", func(f *fixture) { os.Remove(f.files["0/2"]) }, 0, "ltx/0/0000000000000003-0000000000000003.ltx"},
		{"truncated snapshot", func(f *fixture) {
			b := readFile(t, f.files["9/1"])
			os.WriteFile(f.files["9/1"], b[:len(b)/2], 0o644)
		}, 2, "ltx/9/0000000000000001-0000000000000001.ltx"},
		{"header not its name", func(f *fixture) {
			os.Rename(f.files["0/3"], filepath.Join(filepath.Dir(f.files["0/3"]), ltx.FormatFilename(3, 4)))
		}, 0, "ltx/0/0000000000000003-0000000000000004.ltx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.damage(f)
			r := open(t, f.dir)
			_, err := r.Restore(ctx, Options{TXID: tc.txid, TempDir: t.TempDir()})
			failedOn(t, err, tc.file)
		})
	}
}

// A frame whose size field says 4 GiB is refused before the decoder
// allocates it.
func TestGuardBoundsFrames(t *testing.T) {
	f := newFixture(t)
	b := readFile(t, f.files["0/2"])
	// The first page frame: header, 6-byte page header, 4-byte size.
	off := ltx.HeaderSize + ltx.PageHeaderSize
	copy(b[off:], []byte{0xff, 0xff, 0xff, 0x00})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := ltx.NewDecoder(newGuard(bytes.NewReader(b))).Verify()
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "ltx page frame of 4294967040 bytes") {
		t.Fatalf("want the frame refused, got %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Fatalf("decoding allocated %d bytes", d)
	}
	// An intact file passes the guard unchanged.
	if err := ltx.NewDecoder(newGuard(bytes.NewReader(readFile(t, f.files["0/3"])))).Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestSummarize(t *testing.T) {
	f := newFixture(t)
	os.Remove(f.files["0/2"])
	s := open(t, f.dir).Summarize()
	if s.Newest != nil || !strings.Contains(s.NewestErr, "TXIDs 0000000000000002 to 0000000000000002 are in no file") {
		t.Fatalf("newest: %+v %q", s.Newest, s.NewestErr)
	}
	if len(s.Gaps) != 1 || s.Gaps[0] != (Gap{2, 2}) || len(s.Points) != 1 || s.Points[0].TXID != 1 || len(s.Unreachable) != 1 || s.Unreachable[0] != 3 {
		t.Fatalf("summary: %+v", s)
	}
}
