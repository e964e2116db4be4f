package encrypt

import (
	"errors"
	"io"
	"os"
)

// The age file is written and read back around the page cache where the
// file system allows it (O_DIRECT on Linux): the proof then reads what
// the storage device returns for the file, not pages the writer left in
// memory, and the 1 GB of new page cache that buffered writes allocate
// (the largest CPU cost of Seal on the virtual machines measured, 0.85 s
// of system time of 2.07 s for 500 MB, build 6fb08b9) is not spent.
// Elsewhere, or when the file system refuses, it is read and written
// through the page cache as before.

// directBlock is the unit of direct I/O the writer writes, its buffer
// replacing the buffered path's 1 MiB bufio.Writer; the proof reads
// blocks of directReadBlock, as large as the buffered path's reader
// (with --compress zstd the proof's decoder lives beside the writer's
// encoder, and memory is bounded at 64 MB).
const (
	directBlock     = 1 << 20
	directReadBlock = 256 << 10
)

// directAlign is the alignment of direct I/O's offsets, lengths and
// memory: a page, which covers devices with 512-byte and 4 KiB sectors.
// A file system that asks for more refuses the I/O (EINVAL), and the
// file is then used through the page cache.
const directAlign = 4096

// alignedBuf returns n bytes whose address is a multiple of directAlign
// (Go's heap never moves them).
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(addrOf(b)%directAlign)) % directAlign
	return b[skip : skip+n : skip+n]
}

// noDirect, in tests, makes Seal use the page cache as where the file
// system offers no direct I/O.
var noDirect bool

// afterWrite, in tests, is called after each block reached the file and
// before the proof may read it.
var afterWrite func(path string, off, n int64)

// directWriter writes the age file in aligned blocks with O_DIRECT and
// tells the follow how far the file is written. The last, partial block
// is written through the page cache (O_DIRECT turned off on its
// descriptor), as is everything after a write the file system refused.
type directWriter struct {
	f       *os.File
	fw      *follow
	direct  bool
	refused bool // a direct write was refused (not: the tail)
	buf     []byte
	off     int64 // bytes in the file
}

func newDirectWriter(f *os.File, fw *follow) *directWriter {
	return &directWriter{f: f, fw: fw, direct: true, buf: alignedBuf(directBlock)[:0]}
}

func (d *directWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := copy(d.buf[len(d.buf):cap(d.buf)], p)
		d.buf = d.buf[:len(d.buf)+k]
		p, n = p[k:], n+k
		if len(d.buf) == cap(d.buf) {
			if err := d.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush writes what is buffered; after a partial block it must be the
// last call.
func (d *directWriter) flush() error {
	if len(d.buf) == 0 {
		return nil
	}
	if d.direct && len(d.buf)%directAlign != 0 {
		if err := d.buffered(); err != nil {
			return err
		}
	}
	_, err := d.f.WriteAt(d.buf, d.off)
	if err != nil && d.direct && isInvalid(err) {
		// The file system does not take this direct write: the rest
		// goes through the page cache.
		d.refused = true
		if err = d.buffered(); err == nil {
			_, err = d.f.WriteAt(d.buf, d.off)
		}
	}
	if err != nil {
		return err
	}
	n := int64(len(d.buf))
	if afterWrite != nil {
		afterWrite(d.f.Name(), d.off, n)
	}
	d.off += n
	d.buf = d.buf[:0]
	d.fw.advance(n)
	return nil
}

func (d *directWriter) buffered() error {
	d.direct = false
	return setBuffered(d.f)
}

// directReader reads the file back behind the writer with O_DIRECT, in
// aligned blocks of what the writer has written.
type directReader struct {
	f        *follow
	r        *os.File
	direct   bool
	buf      []byte
	pos, end int   // the unread part of buf
	off      int64 // file offset after buf
}

func (f *follow) directReader(r *os.File) *directReader {
	return &directReader{f: f, r: r, direct: true, buf: alignedBuf(directReadBlock)}
}

func (r *directReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.pos == r.end {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos:r.end])
	r.pos += n
	return n, nil
}

func (r *directReader) fill() error {
	n, err := r.f.wait(r.off)
	if err != nil {
		return err
	}
	want := min(int64(len(r.buf)), n-r.off)
	if r.direct && r.off%directAlign != 0 {
		if err := r.buffered(); err != nil {
			return err
		}
	}
	got, err := r.pread(want)
	if err != nil && r.direct && isInvalid(err) {
		if err = r.buffered(); err == nil {
			got, err = r.pread(want)
		}
	}
	if err != nil {
		return err
	}
	if got == 0 {
		// Shorter than what was written to it: not our file any more.
		return io.ErrUnexpectedEOF
	}
	got = min(got, want) // what lies past the written end is not ours
	r.pos, r.end = 0, int(got)
	r.off += got
	return nil
}

// pread reads up to want bytes at r.off with one read: a direct read asks
// for whole aligned blocks and gets fewer at the end of the file.
func (r *directReader) pread(want int64) (int64, error) {
	ask := want
	if r.direct {
		ask = (want + directAlign - 1) / directAlign * directAlign
	}
	for {
		n, err := preadOnce(r.r, r.buf[:ask], r.off)
		if errors.Is(err, errInterrupted) {
			continue
		}
		return int64(n), err
	}
}

func (r *directReader) buffered() error {
	r.direct = false
	return setBuffered(r.r)
}
