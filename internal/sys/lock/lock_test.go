package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks are per open file description: a second Acquire in this
	// process contends like another process would.
	_, err = Acquire(context.Background(), dir, 0)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "(pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second Acquire: %v", err)
	}

	// With a timeout it waits for the release.
	go func() {
		time.Sleep(200 * time.Millisecond)
		a.Release()
	}()
	b, err := Acquire(context.Background(), dir, 10*time.Second)
	if err != nil {
		t.Fatalf("waiting Acquire: %v", err)
	}
	b.Release()

	// A symlink planted under the lock name is not followed.
	dir2 := t.TempDir()
	target := filepath.Join(dir2, "victim")
	if err := os.WriteFile(target, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir2, Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(context.Background(), dir2, 0); err == nil {
		t.Fatal("lock followed a planted symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "data" {
		t.Fatal("symlink target was written")
	}
}
