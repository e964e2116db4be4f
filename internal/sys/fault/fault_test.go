package fault

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A read of a mapped page past the end of a file that was truncated
// under the mapping raises SIGBUS: Guard must return ErrFault.
func TestGuardSIGBUS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 1<<16, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	var sum byte
	err = Guard(func() error {
		sum += m[1<<15]
		return nil
	})
	if !errors.Is(err, ErrFault) {
		t.Fatalf("Guard = %v, want ErrFault", err)
	}
}

func TestGuardPassesThrough(t *testing.T) {
	want := errors.New("x")
	if err := Guard(func() error { return want }); err != want {
		t.Fatalf("Guard = %v", err)
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want the original panic", r)
		}
	}()
	Guard(func() error { panic("boom") })
}
