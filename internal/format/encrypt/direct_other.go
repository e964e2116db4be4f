//go:build !linux

package encrypt

import (
	"errors"
	"io"
	"os"
	"unsafe"
)

// Direct I/O is used on Linux only; elsewhere the age file goes through
// the page cache.
func openDirect(string, int) *os.File { return nil }

func setBuffered(*os.File) error { return nil }

func isInvalid(error) bool { return false }

var errInterrupted = errors.New("interrupted")

func preadOnce(f *os.File, b []byte, off int64) (int, error) {
	n, err := f.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
