// Package encrypt writes and reads backups encrypted with age
// (filippo.io/age), the format and keys of the standard `age` tool, so a
// backup can always be opened with `age -d` and no copy of this one.
//
// Seal streams a verified database (compressed on the way, if asked)
// into an age file and proves the file before anyone publishes it: it
// decrypts it again as a stream and compares the SHA-256 of what comes
// out with that of the database as it was read. The proof needs no
// private key: the file key age generated is taken as the library hands
// it to each recipient's Wrap, kept in memory only and cleared after the
// proof. So the file holds exactly the recipients' stanzas, as `age -e`
// would write it; what the proof cannot show is that each stanza opens
// with its recipient's private key (that is the age library's Wrap).
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
}

// Seal streams the file src (a verified database), compressed with kind
// unless compress.None, into dst (an empty file the caller created and
// owns) as an age file for rcpts, fsyncs it and proves it decrypts to
// the very bytes read from src. progress, if set, gets the bytes of src
// read so far.
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
	keys := &fileKey{}
	defer keys.clear()
	wrapped := make([]age.Recipient, len(rcpts))
	for i, r := range rcpts {
		wrapped[i] = capture{r, keys}
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	aw, err := age.Encrypt(bw, wrapped...)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt %q: %v", src, err)
	}
	var w io.WriteCloser = aw
	if kind != compress.None {
		if w, err = compress.NewWriter(kind, aw); err != nil {
			return Sealed{}, err
		}
	}
	h := sha256.New()
	r := io.TeeReader(fsx.ContextReader(ctx, bufio.NewReaderSize(in, 1<<20)), h)
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
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return Sealed{}, ctx.Err()
		}
		return Sealed{}, fmt.Errorf("encrypt %q into %q: %w", src, dst, fsx.PathErr(err))
	}
	if keys.err != nil {
		return Sealed{}, fmt.Errorf("encrypt %q: %v", src, keys.err)
	}
	want := hex.EncodeToString(h.Sum(nil))

	// The proof: decrypt what is on disk, as a stream, with the file key.
	got, gotSize, fileSum, err := prove(ctx, dst, keys.key, kind)
	if err != nil {
		return Sealed{}, err
	}
	if got != want || gotSize != size {
		return Sealed{}, fmt.Errorf("encrypt %q: the encrypted file %q decrypts to different bytes (sha256 %s, %d bytes; want %s, %d bytes)", src, dst, got, gotSize, want, size)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt into %q: %w", dst, fsx.PathErr(err))
	}
	return Sealed{SHA256: fileSum, Size: fi.Size(), Uncompressed: size}, nil
}

// prove decrypts path with key and returns the SHA-256 and size of the
// plaintext (decompressed when kind says so) and the SHA-256 of the file.
func prove(ctx context.Context, path string, key []byte, kind compress.Kind) (sum string, size int64, fileSum string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, "", fmt.Errorf("prove %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	fh, h := sha256.New(), sha256.New()
	in := &fileReader{r: io.TeeReader(bufio.NewReaderSize(f, 1<<20), fh)}
	pr, err := age.Decrypt(in, keyIdentity(key))
	if err == nil {
		size, err = plaintext(ctx, path, pr, kind, h)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, "", ctx.Err()
		}
		return "", 0, "", fmt.Errorf("prove %q decrypts: %w", path, classify(path, in, err))
	}
	// age reads to the end of the file to find its last chunk; anything
	// after it is an error above, so fh has hashed the whole file.
	return hex.EncodeToString(h.Sum(nil)), size, hex.EncodeToString(fh.Sum(nil)), nil
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
