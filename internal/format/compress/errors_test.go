package compress

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sqlite-backup/internal/output/hint"
)

// compressed writes data compressed with kind to dir/name and returns the
// path and the compressed bytes.
func compressed(t *testing.T, kind Kind, dir, name string, data []byte) (string, []byte) {
	t.Helper()
	src := filepath.Join(dir, name+".src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Compress(context.Background(), kind, src, dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return dst, b
}

// A full disk under the decompressed copy is the disk's problem: the
// backup is fine and must not be reported corrupt (exit 3, "pick an
// older backup"). /dev/full fails every write with ENOSPC.
func TestDecompressDiskFull(t *testing.T) {
	small := payload()                  // fits the 1 MiB buffer: fails at Flush
	large := bytes.Repeat(payload(), 3) // overflows it: fails inside the copy
	if len(small) >= 1<<20 || len(large) <= 1<<20 {
		t.Fatalf("payload sizes %d, %d do not straddle the 1 MiB buffer", len(small), len(large))
	}
	for _, kind := range []Kind{Zstd, Gzip} {
		for _, tc := range []struct {
			name string
			data []byte
		}{{"flush", small}, {"copy", large}} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				path, _ := compressed(t, kind, t.TempDir(), "app.db"+kind.Suffix(), tc.data)
				out, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
				if err != nil {
					t.Skipf("no /dev/full: %v", err)
				}
				err = writeDecompressed(context.Background(), path, out, "free space in /x")
				var ce *CorruptError
				if errors.As(err, &ce) {
					t.Fatalf("a full disk reported as a corrupt backup: %v", err)
				}
				want := fmt.Sprintf("decompress %q: write decompressed copy \"/dev/full\": no space left on device", path)
				if err == nil || err.Error() != want || !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("error %v, want %s", err, want)
				}
				if h := hint.Of(err); h != "free space in /x" {
					t.Errorf("hint %q, want the caller's", h)
				}
			})
		}
	}
}

// The hint names the directory the temp file goes to, and TMPDIR when
// the caller let the system pick it.
func TestFullHint(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	for _, tc := range []struct{ dir, want string }{
		{"", "free space in " + dir + ", or decompress on a larger disk: --temp-dir DIR or TMPDIR=DIR"},
		{"/backups/restore", "free space in /backups/restore"},
	} {
		if got := fullHintFor(tc.dir); got != tc.want {
			t.Errorf("fullHintFor(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

// Damage to the header, an empty file included, is a failed check
// (CorruptError, exit 3) for gzip as for zstd.
func TestHeaderDamage(t *testing.T) {
	for _, kind := range []Kind{Zstd, Gzip} {
		_, good := compressed(t, kind, t.TempDir(), "good"+kind.Suffix(), payload())
		for _, tc := range []struct {
			name    string
			mangle  func([]byte) []byte
			wantMsg string
		}{
			{"empty", func([]byte) []byte { return nil }, "empty file (0 bytes)"},
			{"truncated header", func(b []byte) []byte { return b[:5] }, "unexpected EOF"},
			{"bad header", func(b []byte) []byte {
				// gzip: an unknown method; zstd: reserved frame header bit.
				b = bytes.Clone(b)
				if kind == Gzip {
					b[2] = 9
				} else {
					b[4] |= 0x08
				}
				return b
			}, ""},
		} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.db"+kind.Suffix())
				if err := os.WriteFile(path, tc.mangle(good), 0o600); err != nil {
					t.Fatal(err)
				}
				var ce *CorruptError
				_, _, _, err := Check(context.Background(), path)
				if !errors.As(err, &ce) {
					t.Fatalf("Check = %v, want CorruptError", err)
				}
				if !strings.HasPrefix(err.Error(), fmt.Sprintf("decompress %q: corrupt %s data: ", path, kind)) || !strings.HasSuffix(err.Error(), tc.wantMsg) {
					t.Errorf("Check = %v, want a corrupt %s … %s", err, kind, tc.wantMsg)
				}
				tmpDir := t.TempDir()
				if _, err := DecompressTo(context.Background(), path, tmpDir); !errors.As(err, &ce) {
					t.Fatalf("DecompressTo = %v, want CorruptError", err)
				}
				if es, _ := os.ReadDir(tmpDir); len(es) != 0 {
					t.Errorf("left %d files in the temp dir", len(es))
				}
			})
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// An error reading the compressed file (EIO: a bad disk, an NFS server
// gone) says nothing about its content: it is an I/O error, not
// corruption, in the header as in the middle of the stream.
func TestReadErrorNotCorrupt(t *testing.T) {
	for _, kind := range []Kind{Zstd, Gzip} {
		_, good := compressed(t, kind, t.TempDir(), "good"+kind.Suffix(), payload())
		for _, tc := range []struct {
			name string
			at   int
		}{{"first read", 0}, {"header", 5}, {"mid-stream", len(good) / 2}} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				in := io.MultiReader(bytes.NewReader(good[:tc.at]), failingReader{&os.PathError{Op: "read", Path: "x", Err: syscall.EIO}})
				_, err := decode(context.Background(), kind, "app.db"+kind.Suffix(), in, io.Discard)
				var ce *CorruptError
				if errors.As(err, &ce) || !errors.Is(err, syscall.EIO) {
					t.Fatalf("decode = %v, want an I/O error", err)
				}
				if want := fmt.Sprintf("read %q: input/output error", "app.db"+kind.Suffix()); err.Error() != want {
					t.Errorf("decode = %v, want %s", err, want)
				}
			})
		}
	}
	// A real one: a directory where the backup should be (EISDIR).
	for _, kind := range []Kind{Zstd, Gzip} {
		path := filepath.Join(t.TempDir(), "app.db"+kind.Suffix())
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := Check(context.Background(), path)
		var ce *CorruptError
		if errors.As(err, &ce) || !errors.Is(err, syscall.EISDIR) {
			t.Errorf("%s: Check(directory) = %v, want an I/O error", kind, err)
		}
	}
}

// Anything after the gzip member is damage, however far it reaches past
// what the 1 MiB read buffer took in with the end of the member.
func TestTrailingData(t *testing.T) {
	var member bytes.Buffer
	zw := gzip.NewWriter(&member)
	zw.Write([]byte("another member"))
	zw.Close()
	for _, kind := range []Kind{Zstd, Gzip} {
		_, good := compressed(t, kind, t.TempDir(), "good"+kind.Suffix(), payload())
		for _, tc := range []struct {
			name  string
			extra []byte
		}{
			{"one byte", []byte{0}},
			{"garbage", []byte("trailing garbage")},
			{"second gzip member", member.Bytes()},
			{"past the buffer", bytes.Repeat([]byte{0xaa}, 3<<20)},
		} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.db"+kind.Suffix())
				if err := os.WriteFile(path, append(bytes.Clone(good), tc.extra...), 0o600); err != nil {
					t.Fatal(err)
				}
				var ce *CorruptError
				_, _, _, err := Check(context.Background(), path)
				if !errors.As(err, &ce) {
					t.Fatalf("Check = %v, want CorruptError", err)
				}
				if want := fmt.Sprintf("%d bytes of trailing data", len(tc.extra)); kind == Gzip && ce.Err.Error() != want {
					t.Errorf("Check = %v, want %s", err, want)
				}
				tmpDir := t.TempDir()
				if _, err := DecompressTo(context.Background(), path, tmpDir); !errors.As(err, &ce) {
					t.Fatalf("DecompressTo = %v, want CorruptError", err)
				}
				if es, _ := os.ReadDir(tmpDir); len(es) != 0 {
					t.Errorf("left %d files in the temp dir", len(es))
				}
			})
		}
	}
}
