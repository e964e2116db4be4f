// Package pageindex is the page-hash index of an incremental chain: for
// every page of the database as the chain's newest point materializes
// it, a 128-bit hash that tells a changed page from an unchanged one, and
// the page's LTX checksum (CRC-64/ISO of page number and data), so that
// the next increment finds its changed pages by hashing the snapshot
// alone and updates the chain's state checksum in O(changed pages).
//
// The index lives beside the backups as <db-file>.pageindex, is never
// uploaded, and is trusted only when its SHA-256 (Digest) equals the one
// recorded in the newest point's manifest and its own checks hold (size,
// header, the XOR of its checksums equal to its state checksum): a
// missing, stale or mismatched index means a full backup, never a guess.
//
// The page hash is xxh3-128 keyed with a random seed drawn for each new
// index (each full backup): 128 bits, so that a collision, which would
// silently drop a changed page, is out of reach by chance, and keyed, so
// that an application writing chosen data cannot aim at one without
// reading the index. It runs at memory speed; SHA-256 and BLAKE2b, the
// other candidates in the module's dependencies, cost more than the
// read itself (BenchmarkPageHash, docs/INCREMENTAL.md).
//
// Layout (big-endian): a 64-byte header, one 24-byte entry per page in
// page order (16 bytes of hash, 8 of checksum; the lock-byte page at 1
// GiB, which SQLite never uses, has an all-zero entry), and an 8-byte
// trailer with the state checksum, which is known only once every page
// was read.
package pageindex

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"
	"github.com/zeebo/xxh3"

	"sqlite-backup/internal/sys/fsx"
)

// Suffix names the index of database file <db-file> in a backup
// directory: <db-file>.pageindex.
const Suffix = ".pageindex"

// Sizes of the header, of one entry and of the trailer.
const (
	HeaderSize  = 64
	EntrySize   = 24
	TrailerSize = 8
)

// magic starts every index; the last byte is the layout's version.
const magic = "SQLBKPI\x01"

// Header describes the point an index belongs to.
type Header struct {
	PageSize uint32
	Pages    uint32 // the database's size in pages at that point
	// Seed keys the page hash; drawn anew for every full backup.
	Seed uint64
	// Seq is the point's place in its chain: 0 for the full, n for its
	// n-th increment.
	Seq uint64
	// State is the LTX state checksum of the point: ltx.ChecksumFlag |
	// XOR of ltx.ChecksumPage over every page but the lock-byte page. It
	// is stored in the trailer; Create ignores it.
	State ltx.Checksum
}

// Entry is what the index knows of one page.
type Entry struct {
	Hash [16]byte
	CRC  ltx.Checksum // ltx.ChecksumPage(pgno, data)
}

// LockPage is the lock-byte page of a database of this page size: SQLite
// never stores data in it, LTX never encodes it, its entry is zero.
func (h Header) LockPage() uint32 { return ltx.LockPgno(h.PageSize) }

// Hash is the page hash under this index's seed.
func (h Header) Hash(page []byte) [16]byte {
	u := xxh3.Hash128Seed(page, h.Seed)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.Hi)
	binary.BigEndian.PutUint64(b[8:], u.Lo)
	return b
}

// NewSeed draws the seed of a new index.
func NewSeed() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

func (h Header) marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	binary.BigEndian.PutUint32(b[8:], h.PageSize)
	binary.BigEndian.PutUint32(b[12:], h.Pages)
	binary.BigEndian.PutUint64(b[16:], h.Seed)
	binary.BigEndian.PutUint64(b[24:], h.Seq)
	return b
}

func (h *Header) unmarshal(b []byte) error {
	if string(b[:len(magic)]) != magic {
		return errors.New("not a page index of this version")
	}
	h.PageSize = binary.BigEndian.Uint32(b[8:])
	h.Pages = binary.BigEndian.Uint32(b[12:])
	h.Seed = binary.BigEndian.Uint64(b[16:])
	h.Seq = binary.BigEndian.Uint64(b[24:])
	if !ltx.IsValidPageSize(h.PageSize) {
		return fmt.Errorf("page size %d", h.PageSize)
	}
	if h.Pages == 0 {
		return errors.New("header holds no database")
	}
	for _, c := range b[32:] {
		if c != 0 {
			return errors.New("reserved header bytes are not zero")
		}
	}
	return nil
}

// Size is the length of an index of this header.
func (h Header) Size() int64 { return HeaderSize + int64(h.Pages)*EntrySize + TrailerSize }

// ErrUnusable wraps every reason an index cannot be trusted: the caller
// takes a full backup instead of an increment.
var ErrUnusable = errors.New("page index unusable")

func unusable(path, format string, args ...any) error {
	return fmt.Errorf("%w: %q: %s", ErrUnusable, path, fmt.Sprintf(format, args...))
}

// Reader streams an index's entries in page order.
type Reader struct {
	path    string
	f       *os.File
	r       *bufio.Reader
	hdr     Header
	want    string // the digest the file must have
	sha     hash.Hash
	next    uint32 // page number of the next entry
	xor     ltx.Checksum
	scratch [EntrySize]byte
}

// Open opens the index at path and checks it before any entry is used:
// its SHA-256 must be digest (read from the newest point's manifest), its
// size must match its header. Every failure wraps ErrUnusable, a missing
// file included.
func Open(path, digest string) (*Reader, error) {
	if digest == "" {
		return nil, unusable(path, "the newest point's manifest records no index digest")
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, unusable(path, "missing")
	}
	if err != nil {
		return nil, unusable(path, "%v", fsx.PathErr(err))
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, unusable(path, "not a regular file")
	}
	// Hashed whole before use (it is about 0.6 % of the database), so
	// that a damaged index is never half used; hashed again as it is read.
	sha := sha256.New()
	if _, err := io.Copy(sha, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return nil, unusable(path, "read: %v", fsx.PathErr(err))
	}
	if got := hex.EncodeToString(sha.Sum(nil)); got != digest {
		return nil, unusable(path, "its SHA-256 %s is not the %s the newest point's manifest records (stale or damaged)", got, digest)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, unusable(path, "%v", err)
	}
	rd := &Reader{path: path, f: f, r: bufio.NewReaderSize(f, 1<<20), want: digest, sha: sha256.New(), next: 1}
	b := make([]byte, HeaderSize)
	if _, err := io.ReadFull(rd.r, b); err != nil {
		return nil, unusable(path, "header: %v", err)
	}
	rd.sha.Write(b)
	if err := rd.hdr.unmarshal(b); err != nil {
		return nil, unusable(path, "header: %v", err)
	}
	if fi.Size() != rd.hdr.Size() {
		return nil, unusable(path, "%d bytes, its header says %d pages (%d bytes)", fi.Size(), rd.hdr.Pages, rd.hdr.Size())
	}
	var tr [TrailerSize]byte
	if _, err := f.ReadAt(tr[:], fi.Size()-TrailerSize); err != nil {
		return nil, unusable(path, "trailer: %v", err)
	}
	if rd.hdr.State = ltx.Checksum(binary.BigEndian.Uint64(tr[:])); rd.hdr.State&ltx.ChecksumFlag == 0 {
		return nil, unusable(path, "trailer holds no state checksum")
	}
	rd.xor = ltx.ChecksumFlag
	ok = true
	return rd, nil
}

// Header is the index's header.
func (r *Reader) Header() Header { return r.hdr }

// Next returns the entry of the next page (pages 1, 2, … in turn).
func (r *Reader) Next() (Entry, error) {
	var e Entry
	if r.next > r.hdr.Pages {
		return e, unusable(r.path, "read past its %d pages", r.hdr.Pages)
	}
	if _, err := io.ReadFull(r.r, r.scratch[:]); err != nil {
		return e, unusable(r.path, "entry %d: %v", r.next, err)
	}
	r.sha.Write(r.scratch[:])
	copy(e.Hash[:], r.scratch[:16])
	e.CRC = ltx.Checksum(binary.BigEndian.Uint64(r.scratch[16:]))
	if r.next == r.hdr.LockPage() {
		if e != (Entry{}) {
			return e, unusable(r.path, "the lock-byte page %d has an entry", r.next)
		}
	} else {
		if e.CRC&ltx.ChecksumFlag == 0 {
			return e, unusable(r.path, "entry %d has no checksum", r.next)
		}
		r.xor = ltx.ChecksumFlag | (r.xor ^ e.CRC)
	}
	r.next++
	return e, nil
}

// Finish reads the entries not yet read and proves the whole file: the
// digest once more (it was read twice) and the XOR of its checksums equal
// to its state checksum, which ties every entry to the point's state.
func (r *Reader) Finish() error {
	for r.next <= r.hdr.Pages {
		if _, err := r.Next(); err != nil {
			return err
		}
	}
	var tr [TrailerSize]byte
	if _, err := io.ReadFull(r.r, tr[:]); err != nil {
		return unusable(r.path, "trailer: %v", err)
	}
	r.sha.Write(tr[:])
	if got := hex.EncodeToString(r.sha.Sum(nil)); got != r.want {
		return unusable(r.path, "changed while it was read")
	}
	if r.xor != r.hdr.State {
		return unusable(r.path, "its checksums add up to %s, its header says %s", r.xor, r.hdr.State)
	}
	return nil
}

// Close releases the file.
func (r *Reader) Close() error { return r.f.Close() }

// Writer writes a new index to a private temp file in the backup
// directory; Publish gives it its name.
type Writer struct {
	hdr   Header
	f     *os.File
	w     *bufio.Writer
	sha   hash.Hash
	next  uint32
	xor   ltx.Checksum
	entry [EntrySize]byte
	done  bool
}

// Create starts a new index in dir for database file name db.
func Create(dir, db string, hdr Header) (*Writer, error) {
	if !ltx.IsValidPageSize(hdr.PageSize) || hdr.Pages == 0 {
		return nil, fmt.Errorf("page index of %s: %d pages of %d bytes", db, hdr.Pages, hdr.PageSize)
	}
	f, err := fsx.CreateTemp(dir, db+Suffix, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create page index in %q: %w", dir, err)
	}
	w := &Writer{hdr: hdr, f: f, w: bufio.NewWriterSize(f, 1<<20), sha: sha256.New(), next: 1, xor: ltx.ChecksumFlag}
	w.write(hdr.marshal())
	return w, nil
}

func (w *Writer) write(b []byte) {
	w.sha.Write(b)
	w.w.Write(b) // a write error sticks in the bufio.Writer; Finish reports it
}

// Add appends the entry of the next page. The lock-byte page takes a zero
// entry.
func (w *Writer) Add(e Entry) error {
	if w.next > w.hdr.Pages {
		return fmt.Errorf("page index %q: more than %d pages", w.f.Name(), w.hdr.Pages)
	}
	if w.next == w.hdr.LockPage() {
		if e != (Entry{}) {
			return fmt.Errorf("page index %q: an entry for the lock-byte page %d", w.f.Name(), w.next)
		}
	} else {
		if e.CRC&ltx.ChecksumFlag == 0 {
			return fmt.Errorf("page index %q: page %d has no checksum", w.f.Name(), w.next)
		}
		w.xor = ltx.ChecksumFlag | (w.xor ^ e.CRC)
	}
	copy(w.entry[:16], e.Hash[:])
	binary.BigEndian.PutUint64(w.entry[16:], uint64(e.CRC))
	w.write(w.entry[:])
	w.next++
	return nil
}

// Finish completes and fsyncs the temp file and returns its digest, for
// the point's manifest. The entries' checksums must add up to state, the
// point's state checksum as the caller computed it.
func (w *Writer) Finish(state ltx.Checksum) (string, error) {
	if w.next != w.hdr.Pages+1 {
		return "", fmt.Errorf("page index %q: %d entries for %d pages", w.f.Name(), w.next-1, w.hdr.Pages)
	}
	if w.xor != state {
		return "", fmt.Errorf("page index %q: checksums add up to %s, the state is %s", w.f.Name(), w.xor, state)
	}
	var tr [TrailerSize]byte
	binary.BigEndian.PutUint64(tr[:], uint64(state))
	w.write(tr[:])
	if err := w.w.Flush(); err != nil {
		return "", fmt.Errorf("write page index %q: %w", w.f.Name(), fsx.PathErr(err))
	}
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("fsync page index %q: %w", w.f.Name(), fsx.PathErr(err))
	}
	w.done = true
	return hex.EncodeToString(w.sha.Sum(nil)), nil
}

// Publish renames the finished index over final (the index of the
// previous point, if any: it is replaced, atomically) and makes the
// rename durable.
func (w *Writer) Publish(final string) error {
	if !w.done {
		return fmt.Errorf("page index %q: published before it was finished", w.f.Name())
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("write page index %q: %w", w.f.Name(), fsx.PathErr(err))
	}
	if err := os.Rename(w.f.Name(), final); err != nil {
		return fmt.Errorf("rename page index to %q: %w", final, fsx.PathErr(err))
	}
	if err := fsx.SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("fsync %q: %w", filepath.Dir(final), fsx.PathErr(err))
	}
	return nil
}

// Abort removes the temp file of an index that will not be published.
// It does nothing after Publish.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// Path is the index of database file name db in backup directory dir.
func Path(dir, db string) string { return filepath.Join(dir, db+Suffix) }

// Is says whether the file at path starts as a page index does (any
// version of the layout).
func Is(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(magic))
	n, _ := io.ReadFull(f, b)
	return n == len(magic) && string(b[:len(magic)-1]) == magic[:len(magic)-1]
}
