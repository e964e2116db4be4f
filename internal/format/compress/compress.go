// Package compress streams a verified backup into a zstd or gzip file and
// back. zstd comes from klauspost/compress (pure Go, the standard zstd
// for Go), gzip from the standard library.
//
// API for other commands (verify, list, restore):
//
//	kind := compress.KindOf(path)          // by magic bytes, else by suffix
//	if kind != compress.None {
//		tmp, err := compress.DecompressTo(ctx, path, dir)
//		// tmp is an exclusive 0600 file named .sqlite-backup-tmp-… in dir,
//		// holding the decompressed database; the caller removes it.
//	}
//
// Compress writes into a file the caller created (a temp file beside the
// final name); it never creates a second full-size copy.
package compress

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fsx"
)

// Kind is a compression format.
type Kind string

const (
	None Kind = "none"
	Zstd Kind = "zstd"
	Gzip Kind = "gzip"
)

// Suffix is the file name suffix of a kind: ".zst", ".gz" or "".
func (k Kind) Suffix() string {
	switch k {
	case Zstd:
		return ".zst"
	case Gzip:
		return ".gz"
	}
	return ""
}

// Parse turns a flag value into a Kind.
func Parse(s string) (Kind, error) {
	switch Kind(s) {
	case None, "":
		return None, nil
	case Zstd, Gzip:
		return Kind(s), nil
	}
	return None, fmt.Errorf("unknown compression %q (one of zstd, gzip, none)", s)
}

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// KindOf says how the file at path is compressed: by its first bytes
// when it can be read (a renamed file is still recognised), else by its
// name's suffix.
func KindOf(path string) Kind {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		b := make([]byte, 4)
		n, _ := io.ReadFull(f, b)
		switch {
		case n >= 4 && bytes.Equal(b[:4], zstdMagic):
			return Zstd
		case n >= 2 && bytes.Equal(b[:2], gzipMagic):
			return Gzip
		case n > 0:
			return None
		}
	}
	switch {
	case strings.HasSuffix(path, ".zst"):
		return Zstd
	case strings.HasSuffix(path, ".gz"):
		return Gzip
	}
	return None
}

// Compress streams src into dst (an existing, empty file the caller owns
// and will fsync and rename) and returns the sha256 of src as read, so
// the caller can prove the compressed file decompresses to the same bytes
// (see Check).
func Compress(ctx context.Context, kind Kind, src, dst string) (srcSHA256 string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("compress %q: %w", src, fsx.PathErr(err))
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return "", fmt.Errorf("compress into %q: %w", dst, fsx.PathErr(err))
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	var w io.WriteCloser
	switch kind {
	case Zstd:
		w, err = zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return "", err
		}
	case Gzip:
		w = gzip.NewWriter(bw)
	default:
		return "", fmt.Errorf("compress %q: unknown compression %q", src, kind)
	}
	h := sha256.New()
	if _, err := io.Copy(w, io.TeeReader(fsx.ContextReader(ctx, bufio.NewReaderSize(in, 1<<20)), h)); err != nil {
		w.Close()
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("compress %q into %q: %w", src, dst, fsx.PathErr(err))
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("compress into %q: %w", dst, fsx.PathErr(err))
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("compress into %q: %w", dst, fsx.PathErr(err))
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("compress into %q: %w", dst, fsx.PathErr(err))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NewWriter returns a stream that compresses into w, as Compress does;
// its Close ends the stream but does not close w. Encryption wraps it
// around an age writer so no compressed plaintext file is ever written.
// Its zstd encoder runs on one goroutine: encryption runs beside the
// check and its proof's decoder, which keep the other core, and each
// more encoder holds its own window (with two, the encrypted backup
// peaked at 74-78 MB of anonymous memory, over the 64 MB bound).
func NewWriter(kind Kind, w io.Writer) (io.WriteCloser, error) {
	switch kind {
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	case Gzip:
		return gzip.NewWriter(w), nil
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

// KindOfBytes says which compression the first bytes of a stream show.
func KindOfBytes(b []byte) Kind {
	switch {
	case len(b) >= 4 && bytes.Equal(b[:4], zstdMagic):
		return Zstd
	case len(b) >= 2 && bytes.Equal(b[:2], gzipMagic):
		return Gzip
	}
	return None
}

// Decode streams the compressed data read from in (named name in
// errors) into w, as verify and restore decompress a file: a stream that
// does not decompress, or has trailing data, is a *CorruptError.
func Decode(ctx context.Context, kind Kind, name string, in io.Reader, w io.Writer) (int64, error) {
	return decode(ctx, kind, name, in, w)
}

// reader opens a decompressing stream over r.
func reader(kind Kind, r io.Reader) (io.ReadCloser, error) {
	switch kind {
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case Gzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		g.Multistream(false)
		return g, nil
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

// Check decompresses path as a stream and returns the sha256 and size of
// what comes out, without writing anything, and the sha256 of the
// compressed file itself, read on the way (for its .sha256 sidecar). A
// corrupt stream is an error.
func Check(ctx context.Context, path string) (sum string, size int64, fileSum string, err error) {
	h, fh := sha256.New(), sha256.New()
	size, err = decompress(ctx, path, h, fh)
	if err != nil {
		return "", 0, "", err
	}
	return hex.EncodeToString(h.Sum(nil)), size, hex.EncodeToString(fh.Sum(nil)), nil
}

// decompress writes the content of path to w, and every byte of the file
// as read to raw, if not nil.
func decompress(ctx context.Context, path string, w, raw io.Writer) (int64, error) {
	file, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("decompress %q: %w", path, fsx.PathErr(err))
	}
	defer file.Close()
	var f io.Reader = file
	if raw != nil {
		f = io.TeeReader(file, raw)
	}
	kind := KindOf(path)
	if kind == None {
		return 0, fmt.Errorf("decompress %q: not a zstd or gzip file", path)
	}
	return decode(ctx, kind, path, f, w)
}

// decode streams the compressed file path, read from in to its end, into
// w. A stream that does not decompress is a *CorruptError; an error
// reading in is an I/O error naming path; an error writing w is a
// *writeError for the caller to name its file.
func decode(ctx context.Context, kind Kind, path string, in io.Reader, w io.Writer) (int64, error) {
	br := bufio.NewReaderSize(fileReader{in}, 1<<20)
	// An empty file is no stream at all, though zstd would decode it to
	// nothing.
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			return 0, &CorruptError{Path: path, Err: errors.New("empty file (0 bytes)")}
		}
		return 0, streamError(ctx, path, err)
	}
	r, err := reader(kind, br)
	if err != nil {
		if kind == Gzip {
			// gzip reads its header here (zstd at the first Read): a
			// damaged one is corruption like the rest of the stream.
			return 0, streamError(ctx, path, err)
		}
		return 0, fmt.Errorf("decompress %q: %w", path, err)
	}
	defer r.Close()
	n, err := io.Copy(outWriter{w}, fsx.ContextReader(ctx, r))
	if err != nil {
		return n, streamError(ctx, path, err)
	}
	// Trailing garbage after a complete stream is damage too. The decoder
	// read the file through br, so what it left is what br still buffers
	// plus the rest of the file; reading it also feeds raw the whole file.
	extra, err := io.Copy(io.Discard, br)
	if err != nil {
		return n, streamError(ctx, path, err)
	}
	if extra > 0 {
		return n, &CorruptError{Path: path, Err: fmt.Errorf("%d bytes of trailing data", extra)}
	}
	return n, nil
}

// readError marks an error of reading the compressed file (EIO, a
// directory), which says nothing of its content: not a failed
// verification. The decoders pass such errors up unchanged.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

type fileReader struct{ r io.Reader }

func (f fileReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// writeError marks an error of writing the decompressed output (a full
// temp disk): the backup may well be sound, so it is never corruption.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write decompressed copy: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// outWriter tags w's errors. It has no ReadFrom on purpose: io.Copy would
// otherwise hand the stream to w's ReadFrom, which returns read and write
// errors alike.
type outWriter struct{ w io.Writer }

func (o outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// streamError classifies an error of decode: only what the decoder
// itself reports is corruption.
func streamError(ctx context.Context, path string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var we *writeError
	if errors.As(err, &we) {
		return we
	}
	var re *readError
	if errors.As(err, &re) {
		return fmt.Errorf("read %q: %w", path, fsx.PathErr(re.err))
	}
	return &CorruptError{Path: path, Err: err}
}

// CorruptError reports a compressed file that does not decompress: a
// failed verification, not an I/O problem.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("decompress %q: corrupt %s data: %v", e.Path, KindOf(e.Path), e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// DecompressTo streams the compressed file path into a new exclusive
// 0600 temp file in dir (os.TempDir() when dir is "") named
// .sqlite-backup-tmp-<base>-<random>, and returns its path. The caller
// removes it. On error nothing is left behind. A stream that does not
// decompress is a *CorruptError; failing to write the temp file (a full
// disk) is not.
func DecompressTo(ctx context.Context, path, dir string) (tmpPath string, err error) {
	fullHint := fullHintFor(dir)
	if dir == "" {
		dir = os.TempDir()
	}
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".zst"), ".gz")
	f, err := fsx.CreateTemp(dir, base, 0o600)
	if err != nil {
		return "", fmt.Errorf("decompress %q into %q: %w", path, dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := writeDecompressed(ctx, path, f, fullHint); err != nil {
		return "", err
	}
	return tmp, nil
}

// FullHint is the hint for a full disk under a decompressed copy in
// dir ("" for the system temp dir).
func FullHint(dir string) string { return fullHintFor(dir) }

// fullHintFor is the hint for a full disk under DecompressTo's temp file
// in dir; os.TempDir() comes from TMPDIR, which the operator can move.
func fullHintFor(dir string) string {
	if dir == "" {
		return "free space in " + os.TempDir() + ", or decompress on a larger disk: --temp-dir DIR or TMPDIR=DIR"
	}
	return "free space in " + dir
}

// writeDecompressed streams the content of path into out and closes it.
// Every error of writing out, flush and close included, names out and
// gets fullHint when the disk is full.
func writeDecompressed(ctx context.Context, path string, out *os.File, fullHint string) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	_, err := decompress(ctx, path, bw, nil)
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = &writeError{ferr}
		}
	}
	if cerr := out.Close(); cerr != nil && err == nil {
		err = &writeError{cerr}
	}
	var we *writeError
	if errors.As(err, &we) {
		err = fmt.Errorf("decompress %q: write decompressed copy %q: %w", path, out.Name(), fsx.PathErr(we.err))
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			err = hint.Wrap(err, "%s", fullHint)
		}
	}
	return err
}
