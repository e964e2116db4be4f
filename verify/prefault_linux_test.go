package verify

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"sqlite-backup/internal/testdb"
)

// TestPrefaultFillsTheMap: after prefault, SQLite's map of the checked
// file is resident in full before the check reads a page of it; reading
// page 2 alone would have faulted in 64 KiB at most.
func TestPrefaultFillsTheMap(t *testing.T) {
	probe, err := unix.Mmap(-1, 0, 1<<16, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Madvise(probe, unix.MADV_POPULATE_READ)
	unix.Munmap(probe)
	if err != nil {
		t.Skipf("this kernel has no MADV_POPULATE_READ: %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.db")
	testdb.Create(t, path, testdb.Options{Rows: 4000, BlobSize: 1000}) // ~4.5 MB
	db := openImmutable(t, path)
	stop, err := prefault(context.Background(), db, path)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	maps := mappingsOf(uint64(st.Dev), st.Ino, path)
	if len(maps) != 1 {
		t.Fatalf("%d mappings of the file, want SQLite's one", len(maps))
	}
	// Where stat and the maps disagree on the device (btrfs), the path
	// still finds it; with neither, nothing is found.
	if got := mappingsOf(uint64(st.Dev)+1, st.Ino, path); len(got) != 1 || got[0] != maps[0] {
		t.Fatalf("by inode and path: %v, want %v", got, maps)
	}
	if got := mappingsOf(uint64(st.Dev)+1, st.Ino, path+"x"); len(got) != 0 {
		t.Fatalf("neither device nor path match, found %v", got)
	}
	size := int64(maps[0].end - maps[0].start)
	if size < int64(st.Size)/2 {
		t.Fatalf("SQLite mapped %d bytes of a %d-byte file", size, st.Size)
	}
	if rss := testdb.Smaps(t, maps[0].start, "Rss"); rss < size*9/10 {
		t.Fatalf("after prefault %d of the map's %d bytes are resident", rss, size)
	}
	// The check still runs on the same connection and map.
	problems, err := Check(context.Background(), db, Options{Quick: true})
	stop()
	stop() // as checkDB does: once, then deferred
	if err != nil || len(problems) != 0 {
		t.Fatalf("quick_check after prefault: %v %v", problems, err)
	}
}

// touchPages reads a map that SQLite may change under it: a page past
// the end of a truncated file (SIGBUS) or a range it may not read
// (SIGSEGV) must end the touching, not the program; a closed quit stops
// it.
func TestTouchPagesSurvives(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	const size = 1 << 20
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mapOf := func() (mapping, []byte) {
		b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		start := uintptr(unsafe.Pointer(&b[0]))
		return mapping{start, start + size}, b
	}

	m, b := mapOf()
	if !touchPages(m, make(chan struct{})) {
		t.Fatal("touchPages of a whole mapped file did not get to the end")
	}
	quit := make(chan struct{})
	close(quit)
	if touchPages(m, quit) {
		t.Fatal("touchPages went on after quit")
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if touchPages(m, make(chan struct{})) {
		t.Fatal("touchPages of a truncated file got to the end")
	}
	// Made unreadable rather than unmapped, so that nothing else can be
	// mapped at those addresses before the touching.
	if err := unix.Mprotect(b, unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	if touchPages(m, make(chan struct{})) {
		t.Fatal("touchPages of an unreadable range got to the end")
	}
	if err := unix.Munmap(b); err != nil {
		t.Fatal(err)
	}
}
