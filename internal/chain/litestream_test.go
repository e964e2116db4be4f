package chain

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/verify"
)

// layoutChain is buildChain with the manifests the wiring writes, each
// point with a Litestream TXID (the full 1, its increments 2, 3, 4).
func layoutChain(t *testing.T, dir string) ([]Point, string) {
	t.Helper()
	pts := buildChain(t, dir)
	started := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range pts {
		pts[i].Chain.TXID = uint64(i + 1)
		c := pts[i].Chain
		m := &manifest.Manifest{Version: manifest.Version, Backup: pts[i].Name(), Source: filepath.Join(dir, "app.db"),
			SHA256: pts[i].SHA256, Started: started.Add(time.Duration(i) * time.Minute), Verify: "ok", Chain: &c}
		if err := manifest.WriteSHA256(pts[i].Path, pts[i].SHA256); err != nil {
			t.Fatal(err)
		}
		if err := manifest.Write(pts[i].Path, m); err != nil {
			t.Fatal(err)
		}
	}
	return pts, filepath.Join(dir, "backups")
}

// replicaHeader decodes a replica file whole and returns its header.
func replicaHeader(t *testing.T, path string) ltx.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := ltx.NewDecoder(bufio.NewReader(f))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, dec.Header().PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := dec.Close(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if tr := dec.Trailer(); tr.PostApplyChecksum != 0 {
		t.Fatalf("%s: post-apply checksum %s, want none", path, tr.PostApplyChecksum)
	}
	return dec.Header()
}

// TestSyncReplica: the replica of a chain has one file per point, named
// and headed as Litestream reads them (a level-9 snapshot 1-1, level-0
// files 2-2…, no database checksums, the point's time); a file whose
// point is gone goes; a point whose bytes no longer hold what its
// manifest says gets no file (the error names it, nothing is left under
// a final name or as a temp file), while the others still get theirs.
func TestSyncReplica(t *testing.T) {
	dir := t.TempDir()
	pts, bdir := layoutChain(t, dir)
	ctx := context.Background()
	rep, err := SyncReplica(ctx, bdir, "app.db", time.UTC, false)
	if err != nil {
		t.Fatal(err)
	}
	rdir := ReplicaDir(bdir, "app.db")
	want := []string{"ltx/9/0000000000000001-0000000000000001.ltx", "ltx/0/0000000000000002-0000000000000002.ltx",
		"ltx/0/0000000000000003-0000000000000003.ltx", "ltx/0/0000000000000004-0000000000000004.ltx"}
	if strings.Join(rep.Written, " ") != strings.Join(want, " ") {
		t.Fatalf("wrote %v, want %v", rep.Written, want)
	}
	for i, f := range want {
		h := replicaHeader(t, filepath.Join(rdir, f))
		lo := ltx.TXID(i + 1)
		if i == 0 {
			lo = 1
		}
		if !h.NoChecksum() || h.PreApplyChecksum != 0 || h.MinTXID != lo || h.MaxTXID != ltx.TXID(i+1) || int64(h.Commit) != pts[i].Chain.Pages {
			t.Fatalf("%s: header %+v", f, h)
		}
		fi, err := os.Stat(filepath.Join(rdir, f))
		if err != nil {
			t.Fatal(err)
		}
		if at := time.Date(2026, 12, 7, 10, i, 0, 0, time.UTC); !fi.ModTime().Equal(at) || h.Timestamp != at.UnixMilli() {
			t.Fatalf("%s: time %v, header %d, want %v", f, fi.ModTime(), h.Timestamp, at)
		}
	}
	// In sync: nothing to do.
	if rep, err := SyncReplica(ctx, bdir, "app.db", time.UTC, false); err != nil || len(rep.Written)+len(rep.Removed) > 0 {
		t.Fatalf("second sync: %+v, %v", rep, err)
	}

	// A file under a point's name that is not its own (left by a point
	// removed by hand, whose TXID the point took again) is replaced.
	b, err := os.ReadFile(filepath.Join(rdir, want[2]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rdir, want[3]), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := SyncReplica(ctx, bdir, "app.db", time.UTC, false); err != nil || strings.Join(rep.Removed, " ") != want[3] || strings.Join(rep.Written, " ") != want[3] {
		t.Fatalf("a stale file under %s: %+v, %v", want[3], rep, err)
	}

	// A flipped byte in increment 2 (its file checksum catches it, and
	// its SHA-256), a flipped page byte in the full (its state checksum):
	// neither gets a replica file.
	for _, tc := range []struct {
		p   Point
		off int64
	}{{pts[2], 200}, {pts[0], 4096*3 + 100}} {
		f := filepath.Join(rdir, ReplicaFile(tc.p.Chain))
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
		flip(t, tc.p.Path, tc.off)
		_, err := SyncReplica(ctx, bdir, "app.db", time.UTC, false)
		var fe *verify.FailedError
		if !errors.As(err, &fe) || fe.Result.Path != tc.p.Path {
			t.Fatalf("%s damaged: sync says %v, want a failed verification naming it", tc.p.Name(), err)
		}
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s damaged: %s exists", tc.p.Name(), f)
		}
		flip(t, tc.p.Path, tc.off)
	}
	for _, lv := range []string{"0", "9"} {
		es, _ := os.ReadDir(filepath.Join(rdir, "ltx", lv))
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".") {
				t.Fatalf("left in the replica: %s", e.Name())
			}
		}
	}
	// Repaired, both are written again.
	if rep, err := SyncReplica(ctx, bdir, "app.db", time.UTC, false); err != nil || len(rep.Written) != 2 {
		t.Fatalf("after repair: %+v, %v", rep, err)
	}

	// A manifest that cannot be read may be a point's with a TXID: no
	// file goes while it is so, not even one whose point is gone.
	if err := os.Rename(pts[1].Path+manifest.JSONSuffix, pts[1].Path+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(rdir, want[2]), filepath.Join(rdir, "ltx/0/0000000000000009-0000000000000009.ltx")); err != nil {
		t.Fatal(err)
	}
	if rep, err := SyncReplica(ctx, bdir, "app.db", time.UTC, true); err != nil || len(rep.Removed) > 0 {
		t.Fatalf("with %s's manifest missing: %+v, %v", pts[1].Name(), rep, err)
	}
	if err := os.Rename(pts[1].Path+".saved", pts[1].Path+manifest.JSONSuffix); err != nil {
		t.Fatal(err)
	}
	if rep, err := SyncReplica(ctx, bdir, "app.db", time.UTC, false); err != nil || strings.Join(rep.Removed, " ") != "ltx/0/0000000000000009-0000000000000009.ltx" || strings.Join(rep.Written, " ") != want[2] {
		t.Fatalf("with the manifest back: %+v, %v", rep, err)
	}

	// The newest increment pruned: its file goes, the others stay.
	for _, s := range []string{"", manifest.SHA256Suffix, manifest.JSONSuffix} {
		if err := os.Remove(pts[3].Path + s); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = SyncReplica(ctx, bdir, "app.db", time.UTC, true)
	if err != nil || strings.Join(rep.Removed, " ") != want[3] {
		t.Fatalf("after pruning %s: %+v, %v", pts[3].Name(), rep, err)
	}
	if n, _ := NextTXID(bdir, "app.db", time.UTC); n != 4 {
		t.Fatalf("next TXID %d, want 4", n)
	}
}

// flip inverts one byte of path at off.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestSyncReplicaSpill: a snapshot whose page index goes to a spill file
// (past 1M pages; here past 50) is the same file, proven the same way,
// and leaves no spill file behind.
func TestSyncReplicaSpill(t *testing.T) {
	defer func(n int) { snapshotSpillAt = n }(snapshotSpillAt)
	dir := t.TempDir()
	_, bdir := layoutChain(t, dir)
	rdir := ReplicaDir(bdir, "app.db")
	snap := filepath.Join(rdir, "ltx/9/0000000000000001-0000000000000001.ltx")
	if _, err := SyncReplica(context.Background(), bdir, "app.db", time.UTC, false); err != nil {
		t.Fatal(err)
	}
	inMemory, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(snap)
	snapshotSpillAt = 50
	if rep, err := SyncReplica(context.Background(), bdir, "app.db", time.UTC, false); err != nil || len(rep.Written) != 1 {
		t.Fatalf("spilled: %+v, %v", rep, err)
	}
	spilled, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if string(spilled) != string(inMemory) {
		t.Fatalf("the snapshot written with a spilled index differs (%d bytes, %d in memory)", len(spilled), len(inMemory))
	}
	es, _ := os.ReadDir(filepath.Dir(snap))
	if len(es) != 1 {
		t.Fatalf("left in ltx/9: %v", es)
	}
}
