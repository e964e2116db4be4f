package backup

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback starts the kernel writing the temp file's dirty pages while
// the copy is still running, on a second descriptor of the file, so the
// final fsync has little left to do and dirty pages do not pile up into
// one long burst. It never waits: sync_file_range(SYNC_FILE_RANGE_WRITE)
// only queues writeback, and durability still comes from the fsync.
type writeback struct {
	f    *os.File
	kick chan struct{}
	done chan struct{}
}

func startWriteback(p string) *writeback {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil // an optimisation only: the fsync still makes it durable
	}
	w := &writeback{f: f, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for range w.kick {
			// Errors are ignored on purpose: the fsync reports them.
			unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}()
	return w
}

// Kick asks for writeback of what has been written so far; it does not
// block, and kicks while one is running collapse into one.
func (w *writeback) Kick() {
	if w == nil {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *writeback) Close() {
	if w == nil {
		return
	}
	close(w.kick)
	<-w.done
	w.f.Close()
}
