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
	"time"

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

// TestDownloadCancelled: a download whose context is cancelled ends with
// an error soon after, with the rest of the file never read (the
// connection is closed, as for an upload), and the remote works again
// afterwards (it dials anew).
func TestDownloadCancelled(t *testing.T) {
	sd := testserver.StartSSHD(t)
	size := 256 << 20
	f, err := os.Create(filepath.Join(sd.Dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := remote.Open(context.Background(), sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, how := range []string{"WriteTo", "Read"} {
		ctx, cancel := context.WithCancel(context.Background())
		rc, err := r.Get(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		w := &cancelAfter{n: 1 << 20, cancel: cancel}
		var n int64
		if how == "WriteTo" {
			n, err = io.Copy(w, rc)
		} else {
			n, err = io.CopyBuffer(w, struct{ io.Reader }{rc}, make([]byte, 5000))
		}
		rc.Close()
		cancel()
		if err == nil || n >= int64(size) {
			t.Errorf("%s: read %d of %d bytes after the cancel, error %v; want an error before the end", how, n, size, err)
		}
		if _, err := r.Stat(context.Background(), "big"); err != nil {
			t.Errorf("%s: the remote after a cancelled download: %v", how, err)
		}
	}
}

// cancelAfter cancels once n bytes were written to it, and gives the
// cancellation a moment to act.
type cancelAfter struct {
	n, got    int64
	cancel    func()
	cancelled bool
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.got += int64(len(p))
	if c.got >= c.n && !c.cancelled {
		c.cancelled = true
		c.cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return len(p), nil
}
