//go:build unix

package journal

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Connected reports whether w is the journal stream.
// A writer that filters what goes through it (the CLI's scrubber) is
// looked through by its Unwrap method.
func Connected(w io.Writer) bool {
	if u, ok := w.(interface{ Unwrap() io.Writer }); ok {
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	env := os.Getenv("JOURNAL_STREAM")
	if env == "" {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); n != 2 || err != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
