package encrypt

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openDirect opens path again with flag and O_DIRECT; nil where the file
// system does not offer it.
func openDirect(path string, flag int) *os.File {
	if noDirect {
		return nil
	}
	f, err := os.OpenFile(path, flag|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// setBuffered turns O_DIRECT off on f: its I/O goes through the page
// cache from now on.
func setBuffered(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = sc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_DIRECT)
		}
		ferr = err
	})
	if err == nil {
		err = ferr
	}
	return err
}

func isInvalid(err error) bool { return errors.Is(err, unix.EINVAL) }

var errInterrupted = unix.EINTR

// preadOnce is one pread(2): os.File.ReadAt reads on after a short read,
// at an offset a direct read may not use.
func preadOnce(f *os.File, b []byte, off int64) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = sc.Read(func(fd uintptr) bool {
		n, rerr = unix.Pread(int(fd), b, off)
		return true
	})
	if err == nil {
		err = rerr
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
