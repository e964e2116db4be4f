package pageindex

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"
	"github.com/zeebo/xxh3"
	"golang.org/x/crypto/blake2b"
)

// build writes an index of pages random pages and returns its path,
// digest and the entries.
func build(t *testing.T, dir string, pageSize, pages uint32) (string, string, []Entry) {
	t.Helper()
	seed, err := NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	hdr := Header{PageSize: pageSize, Pages: pages, Seed: seed, Seq: 3}
	w, err := Create(dir, "app.db", hdr)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(pages), 1))
	page := make([]byte, pageSize)
	state := ltx.ChecksumFlag
	var entries []Entry
	for p := uint32(1); p <= pages; p++ {
		var e Entry
		if p != hdr.LockPage() {
			for i := range 64 { // enough to make every page differ
				page[i] = byte(rng.Uint32())
			}
			e = Entry{Hash: hdr.Hash(page), CRC: ltx.ChecksumPage(p, page)}
			state = ltx.ChecksumFlag | (state ^ e.CRC)
		}
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	digest, err := w.Finish(state)
	if err != nil {
		t.Fatal(err)
	}
	final := Path(dir, "app.db")
	if err := w.Publish(final); err != nil {
		t.Fatal(err)
	}
	return final, digest, entries
}

func readAll(path, digest string) ([]Entry, Header, error) {
	r, err := Open(path, digest)
	if err != nil {
		return nil, Header{}, err
	}
	defer r.Close()
	var out []Entry
	for range r.Header().Pages {
		e, err := r.Next()
		if err != nil {
			return nil, Header{}, err
		}
		out = append(out, e)
	}
	return out, r.Header(), r.Finish()
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	// 65536-byte pages put the lock-byte page at 16385: a small index
	// that spans it.
	for _, c := range []struct{ pageSize, pages uint32 }{{4096, 1}, {4096, 300}, {65536, 16400}} {
		path, digest, want := build(t, dir, c.pageSize, c.pages)
		// The digest is the file's plain SHA-256: sha256sum agrees.
		out, err := exec.Command("sha256sum", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(out))[0]; got != digest {
			t.Fatalf("sha256sum %s, Finish %s", got, digest)
		}
		got, hdr, err := readAll(path, digest)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.PageSize != c.pageSize || hdr.Pages != c.pages || hdr.Seq != 3 {
			t.Errorf("header %+v", hdr)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("entry %d differs", i+1)
			}
		}
		if lp := hdr.LockPage(); lp <= c.pages && got[lp-1] != (Entry{}) {
			t.Errorf("lock-byte page %d has an entry", lp)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v", fi.Mode().Perm())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".sqlite-backup-tmp-*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// Every way an index can be wrong makes it unusable: the caller then
// takes a full backup.
func TestUnusable(t *testing.T) {
	dir := t.TempDir()
	path, digest, _ := build(t, dir, 4096, 50)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rehash := func(b []byte) string { s := sha256.Sum256(b); return string(hexs(s[:])) }
	cases := []struct {
		name   string
		data   []byte // nil: missing
		digest string
	}{
		{"missing", nil, digest},
		{"no digest recorded", orig, ""},
		{"stale digest", orig, strings.Repeat("0", 64)},
		{"flipped byte", flip(orig, HeaderSize+5*EntrySize+3), digest},
		{"truncated", orig[:len(orig)-EntrySize], digest},
	}
	// The same damage with a digest that matches (an index written by a
	// bug, not damaged later): its own checks still refuse it.
	bad := flip(orig, HeaderSize+5*EntrySize+17) // a checksum byte
	cases = append(cases, struct {
		name   string
		data   []byte
		digest string
	}{"checksums do not add up", bad, rehash(bad)})
	short := append(append([]byte{}, orig[:len(orig)-EntrySize-TrailerSize]...), orig[len(orig)-TrailerSize:]...)
	cases = append(cases, struct {
		name   string
		data   []byte
		digest string
	}{"fewer entries than pages", short, rehash(short)})
	vers := flip(orig, 7)
	cases = append(cases, struct {
		name   string
		data   []byte
		digest string
	}{"another version", vers, rehash(vers)})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "app.db"+Suffix)
			if c.data != nil {
				if err := os.WriteFile(p, c.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := readAll(p, c.digest)
			if !errors.Is(err, ErrUnusable) {
				t.Fatalf("got %v, want ErrUnusable", err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	// The original still reads.
	if _, _, err := readAll(path, digest); err != nil {
		t.Fatal(err)
	}
}

func TestWriterRefuses(t *testing.T) {
	dir := t.TempDir()
	hdr := Header{PageSize: 4096, Pages: 2}
	w, err := Create(dir, "app.db", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Add(Entry{}); err == nil {
		t.Error("an entry without checksum was taken")
	}
	e := Entry{CRC: ltx.ChecksumPage(1, make([]byte, 4096))}
	if err := w.Add(e); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(e.CRC); err == nil {
		t.Error("finished with a page missing")
	}
	if err := w.Add(Entry{CRC: ltx.ChecksumPage(2, make([]byte, 4096))}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(e.CRC); err == nil {
		t.Error("finished with a state the checksums do not add up to")
	}
	if err := w.Publish(Path(dir, "app.db")); err == nil {
		t.Error("published an unfinished index")
	}
	w.Abort()
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("Abort left %v", left)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func hexs(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// BenchmarkPageHash measures the page-hash candidates on 4 KiB pages:
// the hash runs over every page of every increment, so it must cost
// less than reading the page. Only hashes already in the module's
// dependencies are candidates; 64-bit hashes are not (a collision drops
// a changed page silently). crc64 is the LTX page checksum, computed
// for changed pages only.
func BenchmarkPageHash(b *testing.B) {
	page := make([]byte, 4096)
	for i := range page {
		page[i] = byte(i * 7)
	}
	hdr := Header{Seed: 12345}
	for _, c := range []struct {
		name string
		fn   func([]byte)
	}{
		{"xxh3-128-seeded", func(p []byte) { hdr.Hash(p) }},
		{"xxh3-128", func(p []byte) { xxh3.Hash128(p) }},
		{"sha256", func(p []byte) { sha256.Sum256(p) }},
		{"blake2b-256", func(p []byte) { blake2b.Sum256(p) }},
		{"crc64-iso-ltx", func(p []byte) { ltx.ChecksumPage(1, p) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				c.fn(page)
			}
		})
	}
}
