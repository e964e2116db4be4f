// Package encrypt writes and reads backups encrypted with age
// (filippo.io/age), the format and keys of the standard `age` tool, so a
// backup can always be opened with `age -d` and no copy of this one.
//
// Seal streams a verified database (compressed on the way, if asked)
// into an age file and proves the file before anyone publishes it: while
// it writes, it reads the file back behind itself, decrypts it as a
// stream and compares what comes out, byte for byte, with the database
// read again. The proof needs no private key: the file key age
// generated is taken as the library hands it to each recipient's Wrap,
// kept in memory only and cleared after the proof. So the file holds
// exactly the recipients' stanzas, as `age -e` would write it; what the
// proof cannot show is that each stanza opens with its recipient's
// private key (that is the age library's Wrap).
//
// DecryptTo is the reverse for verify and restore: it decrypts (and
// decompresses) into a private temp file beside the target. A file whose
// header or payload fails authentication is a *CorruptError (a failed
// verification); a file no given identity opens is a *WrongIdentityError.
package encrypt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"filippo.io/age"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/sys/fsx"
)

// Suffix ends the name of an encrypted backup: app.db.20260101_120000.zst.age.
const Suffix = ".age"

// Magic starts every age file.
const Magic = "age-encryption.org/v1\n"

// IsAge says whether the file at path is an age file: by its first bytes
// when it can be read, else by its name.
func IsAge(path string) bool {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		b := make([]byte, len(Magic))
		n, _ := io.ReadFull(f, b)
		if n > 0 {
			return n == len(Magic) && string(b) == Magic
		}
	}
	return strings.HasSuffix(path, Suffix)
}

// Sealed describes a proven age file.
type Sealed struct {
	SHA256       string // of the age file as stored (for its .sha256 sidecar)
	Size         int64  // of the age file
	Uncompressed int64  // of the database inside

	direct bool // written and proven with O_DIRECT throughout (direct.go)
}

// Seal streams the file src (a verified database), compressed with kind
// unless compress.None, into dst (an empty file the caller created and
// owns) as an age file for rcpts, fsyncs it and proves it decrypts to
// the very bytes of src. progress, if set, gets the bytes of src read
// so far.
//
// The proof runs beside the encryption instead of after it: a second
// goroutine reads dst back through its own descriptor as the writer
// hands each block to the file, hashes it for the sidecar, decrypts it
// with the file key, decompresses it, and compares it byte for byte with
// src, read again through a descriptor of its own. Where the file system
// offers O_DIRECT (direct.go) both the writes and the proof's reads
// bypass the page cache, so the proof reads what the device returns;
// elsewhere it reads the page cache, where a read after the fsync would
// find the bytes too. It reads to the end
// of the file only after the writer has written the last byte, so the
// age stream's final chunk and the absence of anything after it are
// proven as before. Whichever side fails first stops the other.
func Seal(ctx context.Context, src, dst string, kind compress.Kind, rcpts []age.Recipient, progress func(done, total int64)) (Sealed, error) {
	if len(rcpts) == 0 {
		return Sealed{}, errors.New("encrypt: no recipients")
	}
	in, err := os.Open(src)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt %q: %w", src, fsx.PathErr(err))
	}
	defer in.Close()
	var total int64
	if fi, err := in.Stat(); err == nil {
		total = fi.Size()
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt into %q: %w", dst, fsx.PathErr(err))
	}
	defer out.Close()
	// The proof's own descriptors, opened before a byte is written: the
	// file it reads back and the database it compares with.
	back, err := os.Open(dst)
	if err != nil {
		return Sealed{}, fmt.Errorf("prove %q: %w", dst, fsx.PathErr(err))
	}
	defer back.Close()
	again, err := os.Open(src)
	if err != nil {
		return Sealed{}, fmt.Errorf("prove %q: %w", src, fsx.PathErr(err))
	}
	defer again.Close()

	keys := &fileKey{}
	defer keys.clear()
	wrapped := make([]age.Recipient, len(rcpts))
	for i, r := range rcpts {
		wrapped[i] = capture{r, keys}
	}
	fw := newFollow(out)
	// Around the page cache where the file system allows it (direct.go),
	// else through it; the proof reads the file the way it was written
	// where it can, and with O_DIRECT either way when it can.
	var sink io.Writer
	var flush func() error
	var dw *directWriter
	if dout := openDirect(dst, os.O_WRONLY); dout != nil {
		defer dout.Close()
		dw = newDirectWriter(dout, fw)
		sink, flush = dw, dw.flush
	} else {
		bw := bufio.NewWriterSize(fw, 1<<20)
		sink, flush = bw, bw.Flush
	}
	var readBack io.Reader
	var dr *directReader
	if dback := openDirect(dst, os.O_RDONLY); dback != nil {
		defer dback.Close()
		dr = fw.directReader(dback)
		readBack = dr
	} else {
		readBack = bufio.NewReaderSize(fw.reader(back), 256<<10)
	}
	aw, err := age.Encrypt(sink, wrapped...)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt %q: %v", src, err)
	}
	if keys.err != nil {
		return Sealed{}, fmt.Errorf("encrypt %q: %v", src, keys.err)
	}

	pctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	proved := make(chan proof, 1)
	go func() {
		p := prove(pctx, dst, readBack, keys.key, kind, src, again)
		if p.err != nil && !fw.failed() {
			stop(errProofFailed) // the writer stops at its next read
		}
		proved <- p
	}()

	var w io.WriteCloser = aw
	if kind != compress.None {
		if w, err = compress.NewWriter(kind, aw); err != nil {
			fw.finish(err)
			<-proved
			return Sealed{}, err
		}
	}
	var r io.Reader = fsx.ContextReader(pctx, bufio.NewReaderSize(in, 1<<20))
	if progress != nil {
		r = &counter{r: r, fn: func(n int64) { progress(n, total) }}
	}
	size, err := io.Copy(w, r)
	if kind != compress.None {
		// Ends the compressed stream (and, on error, its encoder's
		// goroutines); then the age stream.
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = aw.Close()
	}
	if err == nil {
		err = flush()
	}
	// The whole file is written: the proof reads to its end while the
	// fsync waits on the disk.
	fw.finish(err)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	p := <-proved
	if p.err != nil && (err == nil || context.Cause(pctx) == errProofFailed) {
		return Sealed{}, p.err
	}
	if err != nil {
		if ctx.Err() != nil {
			return Sealed{}, ctx.Err()
		}
		return Sealed{}, fmt.Errorf("encrypt %q into %q: %w", src, dst, fsx.PathErr(err))
	}
	if p.size != size {
		return Sealed{}, fmt.Errorf("encrypt %q: the encrypted file %q decrypts to %d bytes, want %d", src, dst, p.size, size)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt into %q: %w", dst, fsx.PathErr(err))
	}
	if fi.Size() != p.fileSize {
		return Sealed{}, fmt.Errorf("encrypt %q: the encrypted file %q holds %d bytes, the proof read %d", src, dst, fi.Size(), p.fileSize)
	}
	return Sealed{SHA256: p.fileSum, Size: fi.Size(), Uncompressed: size,
		direct: dw != nil && !dw.refused && dr != nil && dr.direct}, nil
}

// errProofFailed is the cause with which a failed proof stops the writer.
var errProofFailed = errors.New("the proof failed")

// proof is what prove found.
type proof struct {
	size     int64  // plaintext bytes, each equal to the database's
	fileSum  string // SHA-256 of the age file as read
	fileSize int64  // bytes of the age file read
	err      error
}

// prove decrypts the age file read from file (named name) with key,
// decompresses it when kind says so, and compares what comes out with
// the database read from want (named wantName) to its end. It returns
// the plaintext's size and the SHA-256 and size of the file as read.
func prove(ctx context.Context, name string, file io.Reader, key []byte, kind compress.Kind, wantName string, want io.Reader) proof {
	fh := sha256.New()
	fc := &countWriter{w: fh}
	// Smaller buffers than the writer's: the proof's zstd decoder is
	// alive beside the writer's encoder, and memory is bounded.
	in := &fileReader{r: io.TeeReader(file, fc)}
	same := &sameAs{name: wantName, r: want, buf: make([]byte, 256<<10)}
	pr, err := age.Decrypt(in, keyIdentity(key))
	var size int64
	if err == nil {
		size, err = plaintext(ctx, name, pr, kind, same)
	}
	if err == nil {
		err = same.end()
	}
	if err != nil {
		var d *differsError
		switch {
		case ctx.Err() != nil && context.Cause(ctx) != errProofFailed:
			err = context.Cause(ctx)
		case errors.As(err, &d):
			err = fmt.Errorf("encrypt %q: the encrypted file %q decrypts to different bytes: %w", wantName, name, d)
		case errors.As(err, new(*compareReadError)):
			err = fmt.Errorf("prove %q: %w", name, err)
		default:
			err = fmt.Errorf("prove %q decrypts: %w", name, classify(name, in, err))
		}
		return proof{err: err}
	}
	// age reads to the end of the file to find its last chunk; anything
	// after it is an error above, so fh has hashed the whole file.
	return proof{size: size, fileSum: hex.EncodeToString(fh.Sum(nil)), fileSize: fc.n}
}

// plaintext copies the decrypted stream into w, decompressing it first
// when kind is not None, and makes sure the age stream is read to its
// authenticated end.
func plaintext(ctx context.Context, name string, pr io.Reader, kind compress.Kind, w io.Writer) (int64, error) {
	if kind == compress.None {
		return io.Copy(w, fsx.ContextReader(ctx, pr))
	}
	return compress.Decode(ctx, kind, name, pr, w)
}

// sameAs is a writer that compares what is written with the bytes of a
// reader, in order.
type sameAs struct {
	name string
	r    io.Reader
	buf  []byte
	n    int64 // bytes compared
}

func (s *sameAs) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		k := min(len(p)-done, len(s.buf))
		got, err := io.ReadFull(s.r, s.buf[:k])
		if !bytes.Equal(s.buf[:got], p[done:done+got]) {
			return done, &differsError{at: s.n + int64(firstDiff(s.buf[:got], p[done:done+got]))}
		}
		done += got
		s.n += int64(got)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return done, &differsError{at: s.n, longer: true}
		case err != nil:
			return done, &compareReadError{s.name, err}
		}
	}
	return done, nil
}

// end says whether the reader is at its end too.
func (s *sameAs) end() error {
	var b [1]byte
	switch n, err := s.r.Read(b[:]); {
	case n > 0:
		return &differsError{at: s.n, shorter: true}
	case err == io.EOF:
		return nil
	case err != nil:
		return &compareReadError{s.name, err}
	}
	return s.end() // a reader may return 0, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// differsError: the decrypted stream is not the database.
type differsError struct {
	at              int64
	longer, shorter bool
}

func (e *differsError) Error() string {
	switch {
	case e.longer:
		return fmt.Sprintf("it goes on after the database's %d bytes", e.at)
	case e.shorter:
		return fmt.Sprintf("it ends after %d bytes, before the database does", e.at)
	}
	return fmt.Sprintf("first difference at byte %d", e.at)
}

// compareReadError: the database could not be read again for the proof.
type compareReadError struct {
	name string
	err  error
}

func (e *compareReadError) Error() string {
	return fmt.Sprintf("read %q again: %v", e.name, fsx.PathErr(e.err))
}
func (e *compareReadError) Unwrap() error { return e.err }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// follow is the file Seal writes, telling its reader how far it has been
// written: the reader reads back only bytes the file already holds.
type follow struct {
	w    io.Writer
	mu   sync.Mutex
	more sync.Cond
	n    int64 // bytes handed to the file
	done bool  // the writer is finished
	err  error // and failed
}

func newFollow(w io.Writer) *follow {
	f := &follow{w: w}
	f.more.L = &f.mu
	return f
}

func (f *follow) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.advance(int64(n))
	return n, err
}

// advance says that n more bytes are in the file.
func (f *follow) advance(n int64) {
	f.mu.Lock()
	f.n += n
	f.mu.Unlock()
	f.more.Broadcast()
}

// wait returns how far the file is written once that is past off, or
// the writer has finished: errWriterFailed if it failed.
func (f *follow) wait(off int64) (int64, error) {
	f.mu.Lock()
	for off == f.n && !f.done {
		f.more.Wait()
	}
	n, failed := f.n, f.err != nil
	f.mu.Unlock()
	if failed {
		return 0, errWriterFailed
	}
	if off == n {
		return n, io.EOF
	}
	return n, nil
}

// finish says that nothing more will be written; err, if not nil, why.
// Every path of the writer calls it, so the reader never waits forever.
func (f *follow) finish(err error) {
	f.mu.Lock()
	f.done, f.err = true, err
	f.mu.Unlock()
	f.more.Broadcast()
}

// failed says whether the writer finished with an error.
func (f *follow) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err != nil
}

// reader reads the file through r, its own descriptor, behind the
// writer; at the end of what was written it waits for more, and returns
// io.EOF only once the writer has finished.
func (f *follow) reader(r io.ReaderAt) io.Reader { return &followReader{f: f, r: r} }

type followReader struct {
	f   *follow
	r   io.ReaderAt
	off int64
}

// errWriterFailed ends the proof when the writer failed (its error is
// the one reported).
var errWriterFailed = errors.New("the encryption stopped")

func (r *followReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.f.wait(r.off)
	if err != nil {
		return 0, err
	}
	got, err := r.r.ReadAt(p[:min(int64(len(p)), n-r.off)], r.off)
	r.off += int64(got)
	if err == io.EOF {
		// Shorter than what was written to it: not our file any more.
		err = io.ErrUnexpectedEOF
	}
	return got, err
}

// DecryptTo decrypts the age file path with ids into a new private
// (0600) temp file in dir (os.TempDir() when ""), decompressing it when
// the plaintext is zstd or gzip, and returns the temp file's path and
// the compression found inside. The caller removes the file; on error
// nothing is left behind.
func DecryptTo(ctx context.Context, path, dir string, ids []age.Identity) (tmp string, inner compress.Kind, err error) {
	if len(ids) == 0 {
		return "", "", errors.New("decrypt: no identities")
	}
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("decrypt %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	in := &fileReader{r: bufio.NewReaderSize(f, 1<<20)}
	pr, err := age.Decrypt(in, ids...)
	if err != nil {
		return "", "", classify(path, in, err)
	}
	br := bufio.NewReaderSize(fsx.ContextReader(ctx, pr), 1<<20)
	head, _ := br.Peek(4)
	inner = compress.KindOfBytes(head)

	base := strings.TrimSuffix(filepath.Base(path), Suffix)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".zst"), ".gz")
	out, err := fsx.CreateTemp(dir, base, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("decrypt %q into %q: %w", path, dir, err)
	}
	name := out.Name()
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(name)
		}
	}()
	ow := &outWriter{w: bufio.NewWriterSize(out, 1<<20)}
	if inner == compress.None {
		_, err = io.Copy(ow, br)
	} else {
		_, err = compress.Decode(ctx, inner, path, br, ow)
	}
	if err == nil {
		if err = ow.w.Flush(); err != nil {
			err = &writeError{err}
		}
	}
	if err == nil {
		if err = out.Close(); err != nil {
			err = &writeError{err}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		var we *writeError
		if errors.As(err, &we) {
			return "", "", fmt.Errorf("decrypt %q: write decrypted copy %q: %w", path, name, fsx.PathErr(we.err))
		}
		var cc *compress.CorruptError
		if errors.As(err, &cc) {
			return "", "", &CorruptError{Path: path, Err: err}
		}
		return "", "", classify(path, in, err)
	}
	return name, inner, nil
}

// CheckHeader reads the age header of path (what can be checked without
// an identity): a header that does not parse is a *CorruptError.
func CheckHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	in := &fileReader{r: bufio.NewReader(f)}
	if _, err := age.ExtractHeader(in); err != nil {
		return classify(path, in, err)
	}
	return nil
}

// SealBytes encrypts a small value (a manifest's private part) for rcpts.
func SealBytes(data []byte, rcpts []age.Recipient) ([]byte, error) {
	var b bytes.Buffer
	w, err := age.Encrypt(&b, rcpts...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// OpenBytes decrypts what SealBytes wrote. A wrong identity is a
// *WrongIdentityError; damage a *CorruptError (name names the data).
func OpenBytes(name string, data []byte, ids []age.Identity) ([]byte, error) {
	in := &fileReader{r: bytes.NewReader(data)}
	r, err := age.Decrypt(in, ids...)
	if err == nil {
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(r, 64<<20)); err == nil {
			return b, nil
		}
	}
	return nil, classify(name, in, err)
}

// WrongIdentityError: none of the given identities opens the file.
type WrongIdentityError struct {
	Path string
	Err  error
}

func (e *WrongIdentityError) Error() string {
	return fmt.Sprintf("decrypt %q: none of the --identity keys opens it (it was encrypted to other recipients, or its header is damaged): %v", e.Path, e.Err)
}
func (e *WrongIdentityError) Unwrap() error { return e.Err }

// CorruptError: the age file is damaged (header, authentication of the
// payload, truncation, trailing data): a failed verification.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("decrypt %q: damaged age file: %v", e.Path, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// classify turns an error of age.Decrypt or of reading its stream into
// an I/O error (the file could not be read: no verdict), a
// *WrongIdentityError or a *CorruptError (everything age itself
// rejects, since its header and every chunk are authenticated).
func classify(path string, in *fileReader, err error) error {
	var nm *age.NoIdentityMatchError
	switch {
	case in.err != nil:
		return fmt.Errorf("read %q: %w", path, fsx.PathErr(in.err))
	case errors.As(err, &nm):
		return &WrongIdentityError{Path: path, Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &CorruptError{Path: path, Err: err}
}

// fileKey is the file key age generated for one file, as it was handed
// to the recipients' Wrap.
type fileKey struct {
	key []byte
	err error
}

func (k *fileKey) record(key []byte) {
	switch {
	case k.key == nil:
		k.key = bytes.Clone(key)
	case !bytes.Equal(k.key, key):
		k.err = errors.New("recipients were given different file keys")
	}
}

func (k *fileKey) clear() { clear(k.key) }

// capture is a recipient that remembers the file key it wraps. It keeps
// the inner recipient's labels, so age still refuses to mix recipients
// that must not be mixed.
type capture struct {
	r    age.Recipient
	keys *fileKey
}

func (c capture) Wrap(key []byte) ([]*age.Stanza, error) {
	s, _, err := c.WrapWithLabels(key)
	return s, err
}

func (c capture) WrapWithLabels(key []byte) ([]*age.Stanza, []string, error) {
	c.keys.record(key)
	if rl, ok := c.r.(age.RecipientWithLabels); ok {
		return rl.WrapWithLabels(key)
	}
	s, err := c.r.Wrap(key)
	return s, nil, err
}

// keyIdentity opens a file with a known file key; age still checks the
// header's MAC with it, and every chunk of the payload.
type keyIdentity []byte

func (k keyIdentity) Unwrap([]*age.Stanza) ([]byte, error) { return bytes.Clone(k), nil }

// fileReader remembers an error of reading the file itself, which says
// nothing about its content.
type fileReader struct {
	r   io.Reader
	err error
}

func (f *fileReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// outWriter tags errors of writing the decrypted copy (a full disk):
// never corruption.
type outWriter struct{ w *bufio.Writer }

func (o *outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

type counter struct {
	r    io.Reader
	n    int64
	fn   func(int64)
	last int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.last >= 4<<20 || err == io.EOF {
		c.last = c.n
		c.fn(c.n)
	}
	return n, err
}
