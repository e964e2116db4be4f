package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
	"sqlite-backup/remote/s3"
)

func open(t *testing.T) remote.Remote {
	t.Helper()
	srv := testserver.StartS3(t)
	srv.MakeBucket(t, "bkt")
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	r, err := remote.Open(context.Background(), "s3://bkt/p", remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func put(t *testing.T, r remote.Remote, name string, data []byte) {
	t.Helper()
	h := sha256.Sum256(data)
	if err := r.Put(context.Background(), name, remote.Source{R: bytes.NewReader(data), Size: int64(len(data)), SHA256: hex.EncodeToString(h[:])}); err != nil {
		t.Fatal(err)
	}
}

// TestGetInParts: a download of many parts, read in odd-sized pieces,
// gives the object's bytes in order; one replaced during the download
// fails it (every ranged GET asks for the ETag the download began
// with) instead of splicing two versions; Close in the middle stops
// every fetch.
func TestGetInParts(t *testing.T) {
	r := open(t)
	ctx := context.Background()
	size := 9*s3.GetPart + 12345
	data := make([]byte, size)
	rand.Read(data)
	put(t, r, "db", data)

	rc, err := r.Get(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 777_777)
	for {
		n, err := rc.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rc.Close()
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("got %d bytes that differ from the %d put", got.Len(), len(data))
	}

	// Replaced after the first MiB was read: at most GetThreads+1 parts
	// are fetched ahead, so later parts meet the new version.
	rc, err = r.Get(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, size)
	rand.Read(other)
	put(t, r, "db", other)
	rest, err := io.ReadAll(rc)
	rc.Close()
	if err == nil {
		t.Fatalf("a download of an object replaced meanwhile succeeded (%d bytes; first version %v, second %v)",
			len(buf)+len(rest), bytes.Equal(append(buf, rest...), data), bytes.Equal(append(buf, rest...), other))
	}
	if !strings.Contains(err.Error(), "changed during the download") {
		t.Errorf("error: %v", err)
	}

	// Close mid-download: the fetches end.
	before := runtime.NumGoroutine()
	rc, err = r.Get(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) { // idle HTTP connections keep two
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines after Close, %d before the download", n, before)
	}
}
