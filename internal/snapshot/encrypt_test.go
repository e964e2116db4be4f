package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/testdb"
	"sqlite-backup/verify"
)

// ageKey makes an identity with age-keygen, the independent client that
// opens the backups in these tests.
func ageKey(t *testing.T) (keyFile string, rcpt age.Recipient) {
	t.Helper()
	for _, tool := range []string{"age", "age-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/install-deps.sh installs it)", tool)
		}
	}
	keyFile = filepath.Join(t.TempDir(), "key.txt")
	if out, err := exec.Command("age-keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v: %s", err, out)
	}
	pub, err := exec.Command("age-keygen", "-y", keyFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.ParseX25519Recipient(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, r
}

// TestEncryptedBackupIsTheCheckedCopy: the encryption runs beside the
// check; what it publishes, opened by the age CLI, is byte for byte the
// copy an unencrypted backup of the same snapshot publishes (the copy
// is deterministic), on either check path and with compression.
func TestEncryptedBackupIsTheCheckedCopy(t *testing.T) {
	key, rcpt := ageKey(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 3000, BlobSize: 300})
	plain, err := Run(context.Background(), Options{Source: src, Dir: filepath.Join(dir, "plain")})
	if err != nil {
		t.Fatal(err)
	}
	want := sum(t, plain.Path)
	for _, c := range []struct {
		check VerifyMode
		kind  compress.Kind
	}{{VerifyFull, compress.None}, {VerifyQuick, compress.None}, {VerifyNone, compress.None}, {VerifyFull, compress.Zstd}} {
		t.Run(string(c.check)+"/"+string(c.kind), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			res, err := Run(context.Background(), Options{Source: src, Dir: out, Verify: c.check, Compress: c.kind, Recipients: []age.Recipient{rcpt}})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(t, out); len(got) != 1 || filepath.Join(out, got[0]) != res.Path {
				t.Fatalf("backup dir holds %q, want only %s", got, res.Path)
			}
			if b, _ := os.ReadFile(res.Path); res.SHA256 == "" || res.SHA256 != hexSum(b) {
				t.Errorf("Result.SHA256 %q is not the published file's", res.SHA256)
			}
			dec, err := exec.Command("age", "-d", "-i", key, res.Path).Output()
			if err != nil {
				t.Fatalf("age -d: %v", err)
			}
			if c.kind == compress.Zstd {
				cmd := exec.Command("zstd", "-d", "-c")
				cmd.Stdin = bytes.NewReader(dec)
				if dec, err = cmd.Output(); err != nil {
					t.Fatalf("zstd -d: %v", err)
				}
			}
			if sha256.Sum256(dec) != want {
				t.Error("the encrypted backup decrypts to other bytes than the unencrypted backup of the same snapshot")
			}
			if res.Uncompressed != int64(len(dec)) {
				t.Errorf("Uncompressed = %d, want %d", res.Uncompressed, len(dec))
			}
		})
	}
}

// TestPackedBackupFailingTheCheckLeavesNothing: the encryption or
// compression that ran beside a failing check is discarded with the
// copy: no file, no temp file, and the error is the check's.
func TestPackedBackupFailingTheCheckLeavesNothing(t *testing.T) {
	_, rcpt := ageKey(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 4000, BlobSize: 300})
	fi, _ := os.Stat(src)
	testdb.Corrupt(t, src, int(fi.Size()/4096/2), 4096)
	for _, tc := range []struct {
		kind  compress.Kind
		rcpts []age.Recipient
	}{
		{compress.None, []age.Recipient{rcpt}},
		{compress.Zstd, []age.Recipient{rcpt}},
		{compress.Zstd, nil},
		{compress.Gzip, nil},
	} {
		name := fmt.Sprintf("%s, %d recipients", tc.kind, len(tc.rcpts))
		out := filepath.Join(t.TempDir(), "out")
		_, err := Run(context.Background(), Options{Source: src, Dir: out, Compress: tc.kind, Recipients: tc.rcpts})
		var vf *verify.FailedError
		if !errors.As(err, &vf) {
			t.Fatalf("%s: error %v, want a verification failure", name, err)
		}
		if got := names(t, out); len(got) != 0 {
			t.Errorf("%s: a failed packed backup left %q", name, got)
		}
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
