package sftp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
	"sqlite-backup/remote/sftp"
)

// TestDownloadWhole: a download gives the file's bytes, at sizes around
// the read chunk and the reads in flight, read through WriteTo (io.Copy)
// and in small pieces through Read. With chunks longer than OpenSSH's
// sftp-server answers in one reply (255 KiB), every reply is short: a
// reader that moved on after a short reply (pkg/sftp's own WriteTo)
// would leave holes, which the byte comparison finds.
func TestDownloadWhole(t *testing.T) {
	sd := testserver.StartSSHD(t)
	ctx := context.Background()
	c := sftp.ReadChunk()
	sizes := []int{0, 1, c - 1, c, c + 1, 8 * c, 8*c + 7, 17*c + 3}
	files := map[string][]byte{}
	for _, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		name := fmt.Sprintf("f%d", n)
		if err := os.WriteFile(filepath.Join(sd.Dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for _, chunk := range []int{c, 300 << 10} {
		t.Run(fmt.Sprintf("chunk%d", chunk), func(t *testing.T) {
			defer sftp.SetReadChunk(chunk)()
			r, err := remote.Open(ctx, sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for name, want := range files {
				for _, how := range []string{"WriteTo", "Read"} {
					rc, err := r.Get(ctx, name)
					if err != nil {
						t.Fatal(err)
					}
					var got bytes.Buffer
					if how == "WriteTo" {
						_, err = io.Copy(&got, rc)
					} else {
						_, err = io.CopyBuffer(&got, struct{ io.Reader }{rc}, make([]byte, 5000))
					}
					if err != nil {
						t.Fatalf("%s %s: %v", name, how, err)
					}
					if err := rc.Close(); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got.Bytes(), want) {
						t.Errorf("%s through %s: got %d bytes that differ from the file's %d", name, how, got.Len(), len(want))
					}
				}
			}
		})
	}
}
