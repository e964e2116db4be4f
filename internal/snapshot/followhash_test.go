package snapshot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/testdb"
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
			h, err := newFollowHash(path, tc.moved(&second), nil)
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
	h, err := newFollowHash(path, func() bool { return true }, nil)
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
	h, err := newFollowHash(path, func() bool { return true }, nil)
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

// countedAfter is how many snapshot hooks so far waited for the end of a
// copy.
func countedAfter() int {
	planned.Lock()
	defer planned.Unlock()
	return planned.m["counted after the copy"]
}

// hashWaitedForHook is how many hashes so far waited for the snapshot's
// hook after the copy.
func hashWaitedForHook() int {
	planned.Lock()
	defer planned.Unlock()
	return planned.m["hash waited for the snapshot's hook"]
}

// TestBackupCountsAfterTheCopyUnderAWriter: the snapshot's hook (the row
// counts) runs beside the file copy where nobody writes, and after it,
// still inside the snapshot, when the application commits during the
// copy's first round.
func TestBackupCountsAfterTheCopyUnderAWriter(t *testing.T) {
	defer func(n int) { sendChunkBytes = n }(sendChunkBytes)
	sendChunkBytes = 4096 // many rounds
	for _, write := range []bool{false, true} {
		dir := t.TempDir()
		src := filepath.Join(dir, "app.db")
		app := testdb.Open(t, src, testdb.Options{WAL: true, Rows: 2000})
		defer app.Close()
		before, waited := countedAfter(), hashWaitedForHook()
		var mu sync.Mutex
		last, total, calls := 0, 0, 0
		hookStarted := make(chan struct{})
		rows := -1
		opts := Options{Source: src, Path: filepath.Join(dir, "copy.db"),
			Progress: func(done, all int) {
				mu.Lock()
				last, total = done, all
				calls++
				n := calls
				mu.Unlock()
				switch {
				case n == 1 && write:
					// After the first round, on the copy's goroutine:
					// the hook decides after this returns.
					if _, err := app.Exec("INSERT INTO t(v) VALUES (randomblob(100))"); err != nil {
						t.Error(err)
					}
				case n == 2 && !write:
					// The copy goes on only once the hook has begun
					// beside it.
					select {
					case <-hookStarted:
					case <-time.After(10 * time.Second):
						t.Error("no writer, and the hook did not start beside the copy")
					}
				}
			},
			Snapshot: func(ctx context.Context, conn *sql.Conn) error {
				mu.Lock()
				at, of := last, total
				mu.Unlock()
				if write && at != of {
					t.Errorf("under a writer the hook began at page %d of %d, want after the copy", at, of)
				}
				if !write && at == of {
					t.Errorf("no writer, and the hook began after the copy (page %d of %d)", at, of)
				}
				close(hookStarted)
				// Inside the snapshot: the row committed during the copy
				// is not counted.
				return conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&rows)
			}}
		res, err := Run(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Copier != CopierFile {
			t.Fatalf("copier %q (skipped: %s), want the file copy", res.Copier, res.FileCopySkipped)
		}
		if calls < 3 {
			t.Fatalf("%d rounds of the copy, want several", calls)
		}
		if rows != 2000 {
			t.Errorf("write %v: the hook counted %d rows, want the snapshot's 2000", write, rows)
		}
		if got := testdb.Count(t, opts.Path, "t"); got != 2000 {
			t.Errorf("write %v: the copy has %d rows, want 2000", write, got)
		}
		if sum, err := manifest.FileSHA256(opts.Path); err != nil || sum != res.SHA256 {
			t.Fatalf("file hash %s (%v), recorded %s", sum, err, res.SHA256)
		}
		want := map[bool]int{false: 0, true: 1}[write]
		if got := countedAfter() - before; got != want {
			t.Errorf("a commit during the copy: %v; counted after the copy %d times, want %d", write, got, want)
		}
		// The hash after the copy waits for the counts (a hash that does
		// is TestFollowHashWaitsForTheOtherReader).
		if got := hashWaitedForHook() - waited; got != want {
			t.Errorf("a commit during the copy: %v; the hash waited for the hook %d times, want %d", write, got, want)
		}
	}
}

// TestFollowHashWaitsForTheOtherReader: a hash that waits for the end of
// the copy also waits for wait to close before it reads a byte; one that
// follows the copy (the source stands still) does not wait for it.
func TestFollowHashWaitsForTheOtherReader(t *testing.T) {
	for _, moved := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "copy")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		const size = 1 << 20
		wait := make(chan struct{})
		h, err := newFollowHash(path, func() bool { return moved }, wait)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		appendRandom(t, path, size)
		h.written(size)
		h.close()
		if moved {
			time.Sleep(100 * time.Millisecond) // time enough to hash 1 MiB many times over
			if n := h.hashed.Load(); n != 0 {
				t.Fatalf("hashed %d bytes while the other reader was at work", n)
			}
			close(wait)
		}
		waitHashed(t, h, size) // the source stood still: wait stays open
		if sum, err := h.Wait(context.Background()); err != nil || sum != fileSum(t, path) {
			t.Fatalf("moved %v: hash %s (%v), want the file's", moved, sum, err)
		}
	}
}
