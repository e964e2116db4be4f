// Package fault turns a memory fault while reading a memory-mapped file
// into an error. SQLite reads through mmap when mmap_size is set (we set
// it because it is much faster); an I/O error on such a read, or a file
// truncated underneath the mapping, arrives as SIGBUS, which would crash
// a Go program. Guard makes that one goroutine's fault a recoverable
// error instead, so the caller can report it and fail cleanly.
package fault

import (
	"errors"
	"runtime/debug"
)

// ErrFault is wrapped by the error Guard returns for a memory fault.
var ErrFault = errors.New("I/O error reading a memory-mapped file (the file may be damaged, on a failing disk, or was truncated while being read)")

// Guard runs f and returns its error, or an error wrapping ErrFault if f
// faulted on a memory access. Other panics are re-raised.
//
// After a fault, whatever f was doing was interrupted half way (SQLite
// may hold internal locks): the caller must not use or close the
// connection again, only drop it.
func Guard(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); ok {
				err = ErrFault
				return
			}
			panic(r)
		}
	}()
	return f()
}
