package encrypt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"filippo.io/age"

	"sqlite-backup/internal/format/compress"
)

// directHere says whether the file system of dir takes O_DIRECT.
func directHere(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, "probe")
	os.WriteFile(p, nil, 0o600)
	defer os.Remove(p)
	f := openDirect(p, os.O_WRONLY)
	if f == nil {
		return false
	}
	f.Close()
	return true
}

// TestSealSizes: every size around the direct path's block and alignment
// edges seals into a file that decrypts to the same bytes, written and
// proven with O_DIRECT where the file system offers it (the last,
// partial block through the page cache) and through the page cache
// where it does not (noDirect), with and without compression.
func TestSealSizes(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	direct := runtime.GOOS == "linux" && directHere(t, dir)
	if !direct {
		t.Logf("no O_DIRECT in %s: the page cache path only", dir)
	}
	sizes := []int{0, 1, 4095, 4096, 4097, directBlock - 1, directBlock, directBlock + 1, 3*directBlock - 200, 3 * directBlock}
	for _, viaCache := range []bool{false, true} {
		for _, kind := range []compress.Kind{compress.None, compress.Zstd} {
			for _, n := range sizes {
				noDirect = viaCache
				src, want := sample(t, dir, n)
				dst, s := seal(t, src, dir, kind, []age.Recipient{id.Recipient()})
				noDirect = false
				if wantDirect := direct && !viaCache; s.direct != wantDirect {
					t.Errorf("%d bytes, %s, page cache %v: direct %v, want %v", n, kind, viaCache, s.direct, wantDirect)
				}
				fi, _ := os.Stat(dst)
				if s.Size != fi.Size() || s.Uncompressed != int64(n) {
					t.Errorf("%d bytes, %s: Sealed %+v, file %d bytes", n, kind, s, fi.Size())
				}
				tmp, _, err := DecryptTo(context.Background(), dst, dir, []age.Identity{id})
				if err != nil {
					t.Fatalf("%d bytes, %s: %v", n, kind, err)
				}
				got, _ := os.ReadFile(tmp)
				os.Remove(tmp)
				if !bytes.Equal(got, want) {
					t.Errorf("%d bytes, %s, page cache %v: decrypts to %d other bytes", n, kind, viaCache, len(got))
				}
				os.Remove(dst)
			}
		}
	}
}

// TestProofCatchesDamageBehindTheWriter: a byte of the age file changed
// after the writer wrote its block and before the proof read it fails
// the seal, whether the change went through the page cache or straight
// to the device (O_DIRECT), in the first block, a middle one and the
// last, partial one: the proof reads the file, not the writer's memory.
func TestProofCatchesDamageBehindTheWriter(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	src, _ := sample(t, dir, 3*directBlock+5000)
	defer func() { afterWrite = nil }()
	for _, how := range []string{"page cache", "direct"} {
		for _, which := range []string{"first", "middle", "last"} {
			var blocks int
			damaged := false
			afterWrite = func(path string, off, n int64) {
				blocks++
				hit := which == "first" && blocks == 1 || which == "middle" && blocks == 2 || which == "last" && n%directAlign != 0
				if !hit {
					return
				}
				damaged = true
				flag := os.O_RDWR
				f := (*os.File)(nil)
				if how == "direct" {
					if f = openDirect(path, flag); f == nil {
						t.Skip("no O_DIRECT here")
					}
				} else {
					f, _ = os.OpenFile(path, flag, 0)
				}
				defer f.Close()
				// Read the block as the file holds it, flip one byte in
				// its middle, write it back the same way.
				start := off / directAlign * directAlign
				buf := alignedBuf(int((off + n - start + directAlign - 1) / directAlign * directAlign))
				k, _ := preadOnce(f, buf, start)
				buf = buf[:k]
				buf[off-start+n/2] ^= 0x40
				if how == "direct" && len(buf)%directAlign != 0 {
					setBuffered(f)
				}
				if _, err := f.WriteAt(buf, start); err != nil {
					t.Fatalf("damage: %v", err)
				}
			}
			dst := filepath.Join(dir, "out.age")
			os.WriteFile(dst, nil, 0o600)
			_, err := Seal(context.Background(), src, dst, compress.None, []age.Recipient{id.Recipient()}, nil)
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "prove") {
				t.Errorf("%s, %s block damaged: %v, want the proof to fail with a CorruptError", how, which, err)
			}
			if !damaged {
				t.Errorf("%s, %s block: never damaged (%d blocks written)", how, which, blocks)
			}
			os.Remove(dst)
		}
	}
}
