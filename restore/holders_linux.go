package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Holders returns the pids of other processes that have the database at
// path, or its -wal or -shm, open.
//
// Two probes, because neither alone sees every case:
//   - /proc/*/fd: every open descriptor of the file, including an idle
//     rollback-journal connection that holds no lock at all. Compared by
//     device and inode, so symlinks and other spellings of the path
//     match. Only processes we may inspect are seen (all, as root).
//   - fcntl F_GETLK on SQLite's lock bytes: the db's PENDING/RESERVED/
//     SHARED range and the -shm "DMS" byte, which every connection to a
//     WAL database holds a read lock on for as long as it is open. This
//     sees processes of other users when we are not root.
//
// A process that opens the database after this check is the offline
// restore's remaining race; it is checked again just before the rename.
func Holders(path string) ([]int, error) {
	type key struct{ dev, ino uint64 }
	want := map[key]bool{}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			want[key{uint64(st.Dev), st.Ino}] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	found := map[int]bool{}
	self := os.Getpid()
	procs, err := os.ReadDir("/proc")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	for _, pe := range procs {
		pid, err := strconv.Atoi(pe.Name())
		if err != nil || pid == self {
			continue
		}
		fdDir := filepath.Join("/proc", pe.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to look at: the lock probe covers it
		}
		for _, fd := range fds {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(fdDir, fd.Name()), &st) != nil {
				continue
			}
			if want[key{uint64(st.Dev), st.Ino}] {
				found[pid] = true
				break
			}
		}
	}
	// SQLite's lock bytes (os_unix.c): PENDING at 0x40000000, RESERVED
	// after it, then the 510-byte SHARED range; in -shm the DMS byte at
	// 128 (after the 8 WAL locks at 120).
	for _, probe := range []struct {
		path       string
		start, len int64
	}{
		{path, 0x40000000, 512},
		{path + "-shm", 120, 9},
	} {
		if pid := lockHolder(probe.path, probe.start, probe.len); pid > 0 && pid != self {
			found[pid] = true
		}
	}
	pids := make([]int, 0, len(found))
	for p := range found {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids, nil
}

// holdersVisible reports whether Holders can see every process with the
// database open. Without /proc (an empty chroot, a locked-down
// container) only processes holding a lock show up, not an idle
// rollback-journal connection.
func holdersVisible() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// lockHolder returns the pid of a process holding a POSIX lock on the
// range, or 0. Opening and closing the file would drop any POSIX locks
// this process holds on it, so it is only called while this process has
// no SQLite connection to the database.
func lockHolder(path string, start, n int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: start, Len: n}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return 0
	}
	if lk.Type == unix.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}

// command is the name of process pid as the kernel keeps it (/proc comm,
// at most 15 bytes), or "" when the process is gone.
func command(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
