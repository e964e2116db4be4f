package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/manifest"
)

// appendRandom appends n random bytes to the file at path.
func appendRandom(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// waitHashed waits until h has hashed want bytes (10 s at most).
func waitHashed(t *testing.T, h *followHash, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.hashed.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("hashed %d bytes after 10 s, want %d", h.hashed.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// hashedAfter is how many hashes so far waited for the end of a copy.
func hashedAfter() int {
	planned.Lock()
	defer planned.Unlock()
	return planned.m["hashed after the copy"]
}

// TestFollowHashWaitsWhileTheSourceMoves: the hash reads right behind the
// copy while the source stands still, and from the first time it finds
// the source moved it reads nothing more until the copy is complete. Its
// sum is the file's either way.
func TestFollowHashWaitsWhileTheSourceMoves(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		// moved is the source's watch, given whether the test has
		// written the second part yet; nil: none.
		moved func(second *atomic.Bool) func() bool
		// The bytes hashed before close once each part is written:
		// all of them while the hash follows, none more once it waits.
		first, second int64
	}{
		{"no source to watch", func(*atomic.Bool) func() bool { return nil }, 3 * mib, 5 * mib},
		{"source still", func(*atomic.Bool) func() bool { return func() bool { return false } }, 3 * mib, 5 * mib},
		{"source moved from the start", func(*atomic.Bool) func() bool { return func() bool { return true } }, 0, 0},
		{"source moved after the first part", func(second *atomic.Bool) func() bool {
			return second.Load
		}, 3 * mib, 3 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "copy")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			var second atomic.Bool
			afterBefore := hashedAfter()
			h, err := newFollowHash(path, tc.moved(&second))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			// hashedBy checks what h hashed of the parts written so far:
			// all of it (it follows), or want and nothing more over a
			// while (it waits for the end of the copy).
			hashedBy := func(want, written int64) {
				t.Helper()
				if want == written {
					waitHashed(t, h, want)
					return
				}
				time.Sleep(200 * time.Millisecond)
				if n := h.hashed.Load(); n != want {
					t.Fatalf("hashed %d of %d bytes while the copy went on, want %d", n, written, want)
				}
			}
			appendRandom(t, path, 3*mib)
			h.written(3 * mib)
			hashedBy(tc.first, 3*mib)
			second.Store(true)
			appendRandom(t, path, 2*mib)
			h.written(2 * mib)
			hashedBy(tc.second, 5*mib)
			h.close()
			sum, err := h.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := fileSum(t, path); sum != want {
				t.Fatalf("sum %s, file's %s", sum, want)
			}
			wantAfter := 0
			if tc.second < 5*mib {
				wantAfter = 1
			}
			if n := hashedAfter() - afterBefore; n != wantAfter {
				t.Fatalf("hashed after the copy %d times, want %d", n, wantAfter)
			}
		})
	}
}

// TestFollowHashStopsWhileWaiting: a hash that waits for the end of the
// copy stops at once when the copy fails.
func TestFollowHashStopsWhileWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := newFollowHash(path, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	appendRandom(t, path, 1<<20)
	h.written(1 << 20)
	stopped := make(chan struct{})
	go func() { h.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10 s")
	}
	if _, err := h.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after Stop: %v, want context.Canceled", err)
	}
}

// TestBackupHashesAfterTheCopyUnderAWriter: an application that commits
// during the file copy sends the hash after the copy, and the recorded
// SHA-256 is still the file's; without a commit the hash follows.
func TestBackupHashesAfterTheCopyUnderAWriter(t *testing.T) {
	defer func(n int) { sendChunkBytes = n }(sendChunkBytes)
	sendChunkBytes = 4096 // many rounds: the commit comes after the first
	for _, write := range []bool{false, true} {
		dir := t.TempDir()
		src := filepath.Join(dir, "app.db")
		app := testdb.Open(t, src, testdb.Options{WAL: true, Rows: 2000})
		defer app.Close()
		before := hashedAfter()
		committed := false
		opts := Options{Source: src, Path: filepath.Join(dir, "copy.db"), Progress: func(done, total int) {
			if write && !committed {
				// On the copy's goroutine, after its first round: the
				// next rounds come after the commit.
				committed = true
				if _, err := app.Exec("INSERT INTO t(v) VALUES (randomblob(100))"); err != nil {
					t.Error(err)
				}
			}
		}}
		res, err := Run(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Copier != CopierFile {
			t.Fatalf("copier %q (skipped: %s), want the file copy", res.Copier, res.FileCopySkipped)
		}
		if write && !committed {
			t.Fatal("the copy reported no progress, so nothing was written during it")
		}
		if sum, err := manifest.FileSHA256(opts.Path); err != nil || sum != res.SHA256 {
			t.Fatalf("file hash %s (%v), recorded %s", sum, err, res.SHA256)
		}
		after := hashedAfter() - before
		if want := map[bool]int{false: 0, true: 1}[write]; after != want {
			t.Fatalf("a commit during the copy: %v; hashed after the copy %d times, want %d", write, after, want)
		}
	}
}

// TestFollowHashCanceledAfterTheCopy: under a writer the whole file may be
// ahead of the hash once the copy ends; a cancel then stops it within a
// round (hashRound) instead of waiting for the rest.
func TestFollowHashCanceledAfterTheCopy(t *testing.T) {
	const size = 64 << 20 // four rounds
	path := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	appendRandom(t, path, size)
	h, err := newFollowHash(path, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	h.written(size)
	h.close()
	// Cancel once the hash is under way.
	deadline := time.Now().Add(10 * time.Second)
	for h.hashed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the hash did not start within 10 s")
		}
		time.Sleep(100 * time.Microsecond)
	}
	at := h.hashed.Load()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with its context canceled: %v, want context.Canceled", err)
	}
	select {
	case <-h.done:
	default:
		t.Fatal("Wait returned before the hash stopped reading the file")
	}
	if n := h.hashed.Load(); n > at+hashRound || n == size {
		t.Fatalf("hashed %d of %d bytes, %d at the cancel: want at most one round (%d) more", n, size, at, hashRound)
	}
}
