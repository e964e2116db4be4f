package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
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

// TestFollowHashWaitsWhileTheSourceMoves: the hash reads right behind the
// copy while the source stands still, and from the first time it finds
// the source moved it reads nothing more until the copy is complete. Its
// sum is the file's either way.
func TestFollowHashWaitsWhileTheSourceMoves(t *testing.T) {
	const mib = 1 << 20
	// held waits a while and returns how much h hashed meanwhile: the
	// hash must not go on while it waits for the end of the copy.
	held := func(h *followHash) int64 {
		time.Sleep(200 * time.Millisecond)
		return h.hashed.Load()
	}
	for _, tc := range []struct {
		name  string
		moved func(step *atomic.Int32) func() bool
		after bool
	}{
		{"no source to watch", func(*atomic.Int32) func() bool { return nil }, false},
		{"source still", func(*atomic.Int32) func() bool { return func() bool { return false } }, false},
		{"source moved from the start", func(*atomic.Int32) func() bool { return func() bool { return true } }, true},
		{"source moved after the first round", func(step *atomic.Int32) func() bool {
			return func() bool { return step.Load() > 0 }
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "copy")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			var step atomic.Int32
			h, err := newFollowHash(path, tc.moved(&step))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			appendRandom(t, path, 3*mib)
			h.written(3 * mib)
			if tc.name == "source moved from the start" {
				if n := held(h); n != 0 {
					t.Fatalf("hashed %d bytes while the copy went on under a writer, want 0", n)
				}
			} else {
				waitHashed(t, h, 3*mib) // right behind the copy
			}
			step.Store(1)
			appendRandom(t, path, 2*mib)
			h.written(2 * mib)
			switch tc.name {
			case "source moved after the first round":
				if n := held(h); n != 3*mib {
					t.Fatalf("hashed %d bytes once the source moved, want the %d before", n, 3*mib)
				}
			case "no source to watch", "source still":
				waitHashed(t, h, 5*mib)
			}
			h.close()
			sum, err := h.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := fileSum(t, path); sum != want {
				t.Fatalf("sum %s, file's %s", sum, want)
			}
			if h.after != tc.after {
				t.Fatalf("hashed after the copy: %v, want %v", h.after, tc.after)
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
		planned.Lock()
		before := maps.Clone(planned.m)
		planned.Unlock()
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
		planned.Lock()
		after := planned.m["hashed after the copy"] - before["hashed after the copy"]
		planned.Unlock()
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
