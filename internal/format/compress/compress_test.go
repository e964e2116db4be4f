package compress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/sys/fsx"
)

func payload() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for i := range 20000 {
		b.WriteString("row ")
		b.WriteString(strings.Repeat("x", i%50))
		b.WriteByte(byte(r.Uint32()))
	}
	return b.Bytes()
}

func roundTrip(t *testing.T, kind Kind) (dir, src, dst string) {
	t.Helper()
	dir = t.TempDir()
	src = filepath.Join(dir, "app.db")
	data := payload()
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dst = filepath.Join(dir, "out"+kind.Suffix())
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sum, err := Compress(context.Background(), kind, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) {
		t.Fatalf("Compress returned sha256 %s, want %x", sum, want)
	}
	got, size, fileSum, err := Check(context.Background(), dst)
	if err != nil || got != sum || size != int64(len(data)) {
		t.Fatalf("Check = %s %d %v, want %s %d", got, size, err, sum, len(data))
	}
	// The compressed file's own hash, read on the way, is the whole file's.
	if raw, err := os.ReadFile(dst); err != nil || fileSum != fmt.Sprintf("%x", sha256.Sum256(raw)) {
		t.Fatalf("Check's file hash %s is not the compressed file's (%v)", fileSum, err)
	}
	return dir, src, dst
}

func TestDecompressTo(t *testing.T) {
	for _, kind := range []Kind{Zstd, Gzip} {
		t.Run(string(kind), func(t *testing.T) {
			dir, src, dst := roundTrip(t, kind)
			// Recognised by its bytes even under a neutral name.
			renamed := filepath.Join(dir, "renamed")
			if err := os.Rename(dst, renamed); err != nil {
				t.Fatal(err)
			}
			if k := KindOf(renamed); k != kind {
				t.Fatalf("KindOf = %s, want %s", k, kind)
			}
			tmpDir := t.TempDir()
			tmp, err := DecompressTo(context.Background(), renamed, tmpDir)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(tmp) != tmpDir || !strings.HasPrefix(filepath.Base(tmp), fsx.TempPrefix) {
				t.Errorf("temp file %s not in %s with prefix %s", tmp, tmpDir, fsx.TempPrefix)
			}
			fi, err := os.Stat(tmp)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("temp file mode %v (%v), want 0600", fi.Mode(), err)
			}
			a, _ := os.ReadFile(src)
			b, _ := os.ReadFile(tmp)
			if !bytes.Equal(a, b) {
				t.Error("decompressed bytes differ")
			}
		})
	}
}

// A flipped byte is a CorruptError, and nothing is left in the temp dir.
func TestCorrupt(t *testing.T) {
	for _, kind := range []Kind{Zstd, Gzip} {
		t.Run(string(kind), func(t *testing.T) {
			_, _, dst := roundTrip(t, kind)
			b, _ := os.ReadFile(dst)
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tmpDir := t.TempDir()
			_, err := DecompressTo(context.Background(), dst, tmpDir)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("DecompressTo = %v, want CorruptError", err)
			}
			if es, _ := os.ReadDir(tmpDir); len(es) != 0 {
				t.Errorf("left %d files in the temp dir", len(es))
			}
			if _, _, _, err := Check(context.Background(), dst); !errors.As(err, &ce) {
				t.Errorf("Check = %v, want CorruptError", err)
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	_, src, dst := roundTrip(t, Zstd)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Compress(ctx, Zstd, src, dst); !errors.Is(err, context.Canceled) {
		t.Errorf("Compress = %v, want context.Canceled", err)
	}
	tmpDir := t.TempDir()
	if _, err := DecompressTo(ctx, dst, tmpDir); err == nil {
		t.Error("DecompressTo succeeded with a canceled context")
	}
	if es, _ := os.ReadDir(tmpDir); len(es) != 0 {
		t.Errorf("left %d files in the temp dir", len(es))
	}
}

func TestKindOfPlain(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.db.zst") // name says zstd, bytes say SQLite
	if err := os.WriteFile(p, []byte("SQLite format 3\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k := KindOf(p); k != None {
		t.Errorf("KindOf = %s, want none", k)
	}
	if k := KindOf(filepath.Join(dir, "missing.gz")); k != Gzip {
		t.Errorf("KindOf(missing.gz) = %s, want gzip by suffix", k)
	}
}
