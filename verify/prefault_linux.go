package verify

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"sqlite-backup/internal/sys/fault"
)

// prefault gets SQLite's memory map of the file at path ready before the
// check reads it, in two steps, and returns a stop function that the
// caller must call once the check is over and before the connection is
// closed.
//
//   - One madvise(MADV_POPULATE_READ) enters the whole map into the page
//     tables. Otherwise the check's own thread takes a page fault for
//     every 64 KiB of the file it reaches: about 17,000 faults and
//     0.15–0.2 s per GB on these machines, while the one madvise does the
//     same work in about 30 ms.
//   - Even then, the first read of each page through the new map costs
//     about 1 µs on these virtual machines (0.3 s per GB): the hypervisor
//     fills in its own translation of the page. That cost is per address
//     space, not per CPU, so a goroutine on another core reads one byte of
//     every page ahead of the check and pays it there (quick_check of
//     1 GB: 1.17 s after it, 1.37 s without). With one P there is no other
//     core to use, and it is not started.
//
// It changes nothing SQLite reads: the bytes come from the same page
// cache either way. The madvise may also read pages the check would not
// (free-list pages, the rest of a file whose check stops early), never
// more than the file. On a kernel without MADV_POPULATE_READ (before
// 5.14), or if the mapping is not found, the check runs as it would
// without; those errors are ignored. Only a memory fault of SQLite's own
// read is returned (wrapping fault.ErrFault), and then the connection must
// be dropped unused. stop may be called more than once.
//
// Call it only for a connection opened immutable: SQLite then maps the
// file once and keeps that map until the connection closes. On a live
// database it may drop and remake the map between transactions, and the
// work would go to a stale range.
func prefault(ctx context.Context, db *sql.DB, path string) (stop func(), err error) {
	stop = func() {}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return stop, nil
	}
	// SQLite maps the file at its first read of a page past page 1 (page
	// 1 is never read through the map): read page 2's bytes, unparsed.
	err = fault.Guard(func() error {
		var n sql.NullInt64
		err := db.QueryRowContext(ctx, "SELECT length(data) FROM sqlite_dbpage WHERE pgno = 2").Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if errors.Is(err, fault.ErrFault) {
		return stop, err
	}
	if err != nil {
		return stop, nil
	}
	maps := mappingsOf(uint64(st.Dev), st.Ino, path)
	for _, m := range maps {
		// In slices, so that a cancel (Ctrl-C on a file not yet in the
		// page cache) waits for one slice, not the whole file. A range
		// past the end of the file is an error (EFAULT), not a SIGBUS.
		for p := m.start; p < m.end && ctx.Err() == nil; p += populateSlice {
			unix.Syscall(unix.SYS_MADVISE, p, min(populateSlice, m.end-p), unix.MADV_POPULATE_READ)
		}
	}
	if len(maps) == 0 || runtime.GOMAXPROCS(0) < 2 || ctx.Err() != nil {
		return stop, nil
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range maps {
			if !touchPages(m, quit) {
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }, nil
}

// populateSlice is how much of the map one madvise fills in: 64 MiB, a
// few milliseconds of work from the page cache.
const populateSlice = 64 << 20

// touchSink keeps the compiler from dropping touchPages' reads; atomic,
// since two checks may touch at once.
var touchSink atomic.Uint32

// touchPages reads one byte of every page of m, until quit is closed. It
// reads SQLite's map while SQLite may remap it (a database that grows),
// so a fault is expected now and then: it ends the touching (fault.Guard
// turns it into an error) and never the program. It reports whether it
// got to the end.
func touchPages(m mapping, quit <-chan struct{}) bool {
	page := uintptr(os.Getpagesize())
	err := fault.Guard(func() error {
		var sum byte
		for p := m.start; p < m.end; p += page {
			if (p-m.start)%(256*page) == 0 {
				select {
				case <-quit:
					return context.Canceled
				default:
				}
			}
			// Not Go memory: an address in SQLite's mapping.
			sum += *(*byte)(unsafe.Add(nil, p))
		}
		touchSink.Add(uint32(sum))
		return nil
	})
	return err == nil
}

type mapping struct{ start, end uintptr }

// mappingsOf lists this process's mappings of the file at path, with
// device dev and inode ino, from /proc/self/maps. A line matches on the
// inode and either the device or the path: on btrfs (and overlayfs before
// Linux 6.6) stat reports another device number than the maps do.
func mappingsOf(dev, ino uint64, path string) []mapping {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
	inode := strconv.FormatUint(ino, 10)
	real := ""
	if abs, err := filepath.Abs(path); err == nil {
		real, _ = filepath.EvalSymlinks(abs)
	}
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset major:minor inode path
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[4] != inode {
			continue
		}
		if fields[3] != want && (real == "" || !strings.HasSuffix(line, " "+real)) {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		out = append(out, mapping{uintptr(a), uintptr(b)})
	}
	return out
}
