package snapshot

import (
	"fmt"
	"syscall"
)

// writeCause names a process file size limit (ulimit -f), the one cause
// of a failed write that df does not show. SIGXFSZ is not fatal to a Go
// program, so a write past the limit fails with EFBIG and the run cleans
// up like any other failed run.
func writeCause() string {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_FSIZE, &rl) == nil && rl.Cur != ^uint64(0) {
		return fmt.Sprintf("this process may write files of at most %d bytes (ulimit -f)", rl.Cur)
	}
	return ""
}
