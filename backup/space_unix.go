//go:build unix

package backup

import "golang.org/x/sys/unix"

// diskSpace is what an unprivileged writer may still use of the file
// system holding path, and the file system's size, in bytes.
func diskSpace(path string) (free, total int64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), true
}
