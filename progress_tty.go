package main

import (
	"fmt"
	"io"
	"os"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/progress"
)

// ttyProgress returns callbacks that keep one status line on stderr for
// the copy and the verify of db, or nils when stderr is not a terminal
// (cron, systemd, pipes get no progress output). Each line clears itself
// when its phase completes; clear removes whatever is left (after an
// error or an interrupt), so error messages start on a clean line.
func ttyProgress(stderr io.Writer, db string) (copyFn func(done, total int), verifyFn func(done, total int64, finished bool), clear func()) {
	f, ok := stderr.(*os.File)
	if !ok || !progress.IsTerminal(f) {
		return nil, nil, func() {}
	}
	pageSize := 4096
	if fh, err := os.Open(db); err == nil {
		if h, err := sqlitefile.ReadHeader(fh); err == nil {
			pageSize = h.PageSize
		}
		fh.Close()
	}
	cp, vl := progress.New(stderr, "copy", pageSize), progress.New(stderr, "verify", pageSize)
	copyFn = func(done, total int) {
		cp.Update(int64(done), int64(total))
		if done >= total {
			cp.Done()
		}
	}
	verifyFn = func(done, total int64, finished bool) {
		switch {
		case finished:
			vl.Done()
		case done >= total:
			// Every page is read; integrity_check is now matching index
			// entries to rows, which has no measurable progress.
			vl.Note(fmt.Sprintf("all %d pages read, still checking", total))
		default:
			vl.Update(done, total)
		}
	}
	return copyFn, verifyFn, func() { cp.Done(); vl.Done() }
}

// ttyEncryptProgress is the status line of the encryption of db's
// verified copy (counted in db's pages), or nils off a terminal.
func ttyEncryptProgress(stderr io.Writer, db string) (fn func(done, total int64), clear func()) {
	f, ok := stderr.(*os.File)
	if !ok || !progress.IsTerminal(f) {
		return nil, func() {}
	}
	pageSize := int64(4096)
	if fh, err := os.Open(db); err == nil {
		if h, err := sqlitefile.ReadHeader(fh); err == nil {
			pageSize = int64(h.PageSize)
		}
		fh.Close()
	}
	l := progress.New(stderr, "encrypt", int(pageSize))
	return func(done, total int64) {
		l.Update(done/pageSize, total/pageSize)
		if done >= total {
			l.Done()
		}
	}, l.Done
}
