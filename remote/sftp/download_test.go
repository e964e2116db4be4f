package sftp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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
					// Read to its end, the stream stays there.
					if n, err := rc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
						t.Errorf("%s through %s: a Read after the end gave %d bytes, %v; want io.EOF", name, how, n, err)
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

// TestDownloadChunkFollowsSession: a download reads in chunks no longer
// than its session's packet size, also when the chunk wanted changed
// after the session was made. A longer read would be split by pkg/sftp,
// which counts a short reply in a split read as the end of the file: a
// download cut short with no error.
func TestDownloadChunkFollowsSession(t *testing.T) {
	sd := testserver.StartSSHD(t)
	ctx := context.Background()
	want := make([]byte, 4<<20+9)
	rand.Read(want)
	if err := os.WriteFile(filepath.Join(sd.Dir, "f"), want, 0o600); err != nil {
		t.Fatal(err)
	}
	restore := sftp.SetReadChunk(300 << 10)
	defer restore()
	r, err := remote.Open(ctx, sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Stat(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{300 << 10, 400 << 10} {
		sftp.SetReadChunk(chunk) // the first Get makes the session at 300 KiB
		rc, err := r.Get(ctx, "f")
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, err = io.Copy(&got, rc)
		rc.Close()
		if err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Errorf("chunk %d: got %d bytes of %d, %v", chunk, got.Len(), len(want), err)
		}
	}
}

// TestManyOpenDownloadsSmall: downloads of small files, many open at
// once as a Litestream restore opens its plan's files, each hold about
// their file's size, not every read in flight's buffer (2 MiB).
func TestManyOpenDownloadsSmall(t *testing.T) {
	sd := testserver.StartSSHD(t)
	ctx := context.Background()
	if err := os.WriteFile(filepath.Join(sd.Dir, "small"), []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := remote.Open(ctx, sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const open = 64
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var rcs []io.ReadCloser
	for range open {
		rc, err := r.Get(ctx, "small")
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(rc, b); err != nil || b[0] != '0' {
			t.Fatalf("first byte %q, %v", b, err)
		}
		rcs = append(rcs, rc)
	}
	grew := int64(heap()) - int64(before)
	for _, rc := range rcs {
		rc.Close()
	}
	// 2 MiB each would be 128 MiB; 32 KiB each is 2 MiB.
	if limit := int64(16 << 20); grew > limit {
		t.Errorf("%d open downloads of a 10-byte file grew the heap by %d MiB, want under %d MiB", open, grew>>20, limit>>20)
	}
}

// TestDownloadCancelledStalled: a cancel ends a download whose server
// has stopped sending (a relay that forwards the first MiB of the
// server's bytes and then nothing), and the remote answers afterwards
// over a new connection. Closing the SFTP sessions before the SSH
// connection hung here: a session's Close waits for a reader that only
// the closed connection ends.
func TestDownloadCancelledStalled(t *testing.T) {
	sd := testserver.StartSSHD(t)
	if err := os.WriteFile(filepath.Join(sd.Dir, "big"), bytes.Repeat([]byte("x"), 64<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := newStallingRelay(t, fmt.Sprintf("127.0.0.1:%d", sd.Port), 1<<20)
	port := relay.Addr().(*net.TCPAddr).Port
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := strings.Replace(sd.KnownHostsLine(), fmt.Sprintf(":%d ", sd.Port), fmt.Sprintf(":%d ", port), 1)
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(sd.URL(), fmt.Sprintf(":%d/", sd.Port), fmt.Sprintf(":%d/", port), 1)
	r, err := remote.Open(context.Background(), url, remote.Options{SSHKey: sd.Key, KnownHosts: kh})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := r.Get(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		rc.Close()
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the relay has stalled by now
	cancel()
	// A bound for a hang, not a figure: the cancel acts in milliseconds.
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the download through a stalled relay ended without an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled download still hangs after 30 s")
	}
	stat := make(chan error, 1)
	go func() { _, err := r.Stat(context.Background(), "big"); stat <- err }()
	select {
	case err := <-stat:
		if err != nil {
			t.Errorf("the remote after the cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a Stat after the cancel still hangs after 30 s")
	}
}

// stallingRelay forwards TCP connections to target; on the first one it
// passes the server's first limit bytes and then stops reading from the
// server, as a link that went dead would. Later connections pass all.
type stallingRelay struct {
	net.Listener
	mu    sync.Mutex
	first bool
}

func newStallingRelay(t *testing.T, target string, limit int64) *stallingRelay {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &stallingRelay{Listener: l, first: true}
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		l.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, s)
			cmu.Unlock()
			r.mu.Lock()
			stall := r.first
			r.first = false
			r.mu.Unlock()
			go io.Copy(s, c)
			go func() {
				if stall {
					io.CopyN(c, s, limit)
					return // the server's side is read no more
				}
				io.Copy(c, s)
			}()
		}
	}()
	return r
}
