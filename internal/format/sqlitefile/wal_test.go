package sqlitefile

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/testdb"
)

// liveWAL makes a WAL database whose "application" connection is still
// open with frames not checkpointed, and returns the -shm and -wal bytes.
func liveWAL(t *testing.T, pageSize int) (shm, wal []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.db")
	testdb.Create(t, p, testdb.Options{WAL: true, Rows: 50, PageSize: pageSize})
	db := testdb.Open(t, p, testdb.Options{WAL: true})
	t.Cleanup(func() { db.Close() })
	for _, s := range []string{
		"PRAGMA wal_autocheckpoint=0",
		"INSERT INTO t(v) SELECT randomblob(300) FROM t",
		"CREATE TABLE u(x)",
		"UPDATE t SET v = randomblob(100) WHERE id % 3 = 0",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	var err error
	if shm, err = os.ReadFile(p + "-shm"); err != nil {
		t.Fatal(err)
	}
	if wal, err = os.ReadFile(p + "-wal"); err != nil {
		t.Fatal(err)
	}
	return shm, wal
}

func TestWALFrames(t *testing.T) {
	for _, ps := range []int{512, 4096, 65536} {
		shm, wal := liveWAL(t, ps)
		idx, err := ParseWALIndex(shm)
		if err != nil {
			t.Fatalf("page size %d: %v", ps, err)
		}
		if idx.PageSize != ps || idx.MaxFrame == 0 || idx.Pages == 0 {
			t.Fatalf("page size %d: index %+v", ps, idx)
		}
		frames, err := WALFrames(bytes.NewReader(wal), idx)
		if err != nil {
			t.Fatalf("page size %d: %v", ps, err)
		}
		// Every page offset points at a page image inside the frames read.
		end := int64(walHeaderSize) + int64(idx.MaxFrame)*int64(walFrameHeaderSize+ps)
		if len(frames) == 0 || len(frames) > int(idx.MaxFrame) {
			t.Fatalf("page size %d: %d pages in %d frames", ps, len(frames), idx.MaxFrame)
		}
		// The newest image of each page among frames 1..MaxFrame wins.
		want := map[uint32]int64{}
		for i := int64(0); i < int64(idx.MaxFrame); i++ {
			fo := int64(walHeaderSize) + i*int64(walFrameHeaderSize+ps)
			want[binary.BigEndian.Uint32(wal[fo:])] = fo + walFrameHeaderSize
		}
		if len(want) != len(frames) {
			t.Fatalf("page size %d: %d pages, want %d", ps, len(frames), len(want))
		}
		for pg, off := range want {
			if frames[pg] != off {
				t.Fatalf("page size %d: page %d at %d, want its newest image at %d", ps, pg, frames[pg], off)
			}
		}
		for pg, off := range frames {
			if pg < 1 || pg > idx.Pages || off+int64(ps) > end || (off-walHeaderSize)%int64(walFrameHeaderSize+ps) != walFrameHeaderSize {
				t.Fatalf("page size %d: page %d at offset %d", ps, pg, off)
			}
			if got := binary.BigEndian.Uint32(wal[off-walFrameHeaderSize:]); got != pg {
				t.Fatalf("page size %d: offset %d holds page %d, not %d", ps, off, got, pg)
			}
		}
	}
}

// TestWALFramesRefuses: anything that is not exactly the WAL the index
// describes is an error, never a silently different snapshot.
func TestWALFramesRefuses(t *testing.T) {
	shm, wal := liveWAL(t, 4096)
	idx, err := ParseWALIndex(shm)
	if err != nil {
		t.Fatal(err)
	}
	frame := int64(walFrameHeaderSize + 4096)
	mut := func(f func(w []byte) []byte) []byte { return f(bytes.Clone(wal)) }
	earlier := idx
	earlier.MaxFrame--
	cases := []struct {
		name string
		wal  []byte
		idx  WALIndex
		want string
	}{
		{"flipped byte in frame 2's page", mut(func(w []byte) []byte { w[walHeaderSize+frame+100] ^= 1; return w }), idx, "frame 2: checksum mismatch"},
		{"flipped byte in a frame header", mut(func(w []byte) []byte { w[walHeaderSize+3] ^= 1; return w }), idx, "frame 1: checksum mismatch"},
		{"other salt in a frame", mut(func(w []byte) []byte { w[walHeaderSize+2*frame+9] ^= 1; return w }), idx, "frame 3: salt mismatch"},
		{"restarted wal", mut(func(w []byte) []byte { w[17] ^= 1; return w }), idx, "salt differs"},
		{"header checksum", mut(func(w []byte) []byte { w[12] ^= 1; return w }), idx, "wal header checksum"},
		{"not a wal", mut(func(w []byte) []byte { w[0] = 0; return w }), idx, "bad wal magic"},
		{"truncated", wal[:len(wal)-100], idx, "read wal frame"},
		{"index names an earlier frame", wal, earlier, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := WALFrames(bytes.NewReader(c.wal), c.idx)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParseWALIndexRefuses(t *testing.T) {
	shm, _ := liveWAL(t, 4096)
	cases := []struct {
		name string
		mut  func(b []byte)
		want string
	}{
		{"copies differ", func(b []byte) { b[16]++ }, "copies differ"},
		{"not initialised", func(b []byte) { b[12], b[48+12] = 0, 0 }, "not initialised"},
		{"bad checksum", func(b []byte) { b[20]++; b[48+20]++ }, "checksum"},
		{"other version", func(b []byte) { b[0]++; b[48]++ }, "version"},
		{"short", nil, "too short"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(shm)
			if c.mut == nil {
				b = b[:100]
			} else {
				c.mut(b)
			}
			_, err := ParseWALIndex(b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}
