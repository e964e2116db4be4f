//go:build unix

package journal

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Connected reports whether w is the journal stream.
func Connected(w io.Writer) bool {
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
