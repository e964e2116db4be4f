// Package sqlitefile knows the on-disk shape of a SQLite database: its
// 100-byte header, its sibling files (-wal, -shm, -journal) and how to
// name it in a URI that SQLite will not reinterpret. Both backup and
// verify look at a file through this package before SQLite ever opens it,
// because SQLite happily treats an empty file as an empty database and
// creates files it is pointed at.
package sqlitefile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Magic is the first 16 bytes of every SQLite 3 database file.
const Magic = "SQLite format 3\x00"

// HeaderSize is the size of the database header on page 1.
const HeaderSize = 100

// Header is the part of the database header the tool reasons about.
type Header struct {
	PageSize int   // bytes per page (512..65536)
	WAL      bool  // file format version bytes say WAL (2)
	Pages    int64 // in-header database size, valid only if PagesValid
	// PagesValid reports whether the in-header page count can be trusted:
	// SQLite only trusts it when the version-valid-for number matches the
	// change counter.
	PagesValid  bool
	UserVersion uint32
	AppID       uint32
	// ChangeCounter goes up with every commit in rollback-journal mode.
	ChangeCounter uint32
}

// ErrNotSQLite reports a file without the SQLite header.
var ErrNotSQLite = errors.New("not a SQLite database (no SQLite header)")

// ParseHeader decodes the 100-byte header. It returns ErrNotSQLite when
// the magic string is missing and a descriptive error for impossible
// values.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize || string(b[:16]) != Magic {
		return Header{}, ErrNotSQLite
	}
	var h Header
	ps := int(binary.BigEndian.Uint16(b[16:18]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return Header{}, fmt.Errorf("invalid page size %d in header", ps)
	}
	h.PageSize = ps
	h.WAL = b[18] == 2 || b[19] == 2
	h.Pages = int64(binary.BigEndian.Uint32(b[28:32]))
	h.PagesValid = h.Pages > 0 && binary.BigEndian.Uint32(b[24:28]) == binary.BigEndian.Uint32(b[92:96])
	h.UserVersion = binary.BigEndian.Uint32(b[60:64])
	h.AppID = binary.BigEndian.Uint32(b[68:72])
	h.ChangeCounter = binary.BigEndian.Uint32(b[24:28])
	return h, nil
}

// ReadHeader reads and decodes the header of an open file. A file shorter
// than the header is reported as ErrNotSQLite.
func ReadHeader(f io.ReaderAt) (Header, error) {
	b := make([]byte, HeaderSize)
	n, err := f.ReadAt(b, 0)
	if n < HeaderSize {
		if err != nil && err != io.EOF {
			return Header{}, err
		}
		return Header{}, ErrNotSQLite
	}
	return ParseHeader(b)
}

// Sidecars are the suffixes SQLite appends to a database's name for the
// files it keeps beside it.
var Sidecars = []string{"-wal", "-shm", "-journal"}

// SidecarOf reports whether name is one of SQLite's sidecar files and, if
// so, the database it belongs to.
func SidecarOf(name string) (db string, ok bool) {
	for _, s := range Sidecars {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return strings.TrimSuffix(name, s), true
		}
	}
	return "", false
}

// CheckSize reports a file of size bytes that is shorter than its header
// h says, or not a whole number of pages, as "truncated: …". It is only
// meaningful for a file nobody writes: beside a -wal or a hot -journal
// the file's size may legitimately disagree with the header, and a live
// database must be read under SQLite's lock (a writer in
// journal_mode=MEMORY or OFF extends the file with no journal beside it,
// page 1 first).
func CheckSize(h Header, size int64) error {
	have := size / int64(h.PageSize)
	switch {
	case size%int64(h.PageSize) != 0:
		return fmt.Errorf("truncated: size %d is not a multiple of the page size %d", size, h.PageSize)
	case h.PagesValid && h.Pages > have:
		return fmt.Errorf("truncated: header says %d pages, file holds %d", h.Pages, have)
	}
	return nil
}

// HasJournal reports whether a -wal or -journal stands beside the
// database at path: part of its content may then live there.
func HasJournal(path string) bool {
	for _, s := range []string{"-wal", "-journal"} {
		if _, err := os.Lstat(path + s); err == nil {
			return true
		}
	}
	return false
}

// URI builds a file: URI for path with the given query parameters. The
// path is made absolute and escaped so that '?', '#' and '%' in a file
// name stay part of the name: SQLite only honours mode=ro and immutable=1
// in a URI, and a plain path with "?mode=ro" silently opens read-write.
func URI(path string, params url.Values) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: encodeQuery(params)}
	// url.URL would write "file:///abs"; SQLite accepts that form, and
	// OmitHost keeps it as "file:/abs" which needs no authority parsing.
	u.OmitHost = true
	return u.String(), nil
}

// encodeQuery keeps the caller's key order stable and escapes values the
// way SQLite's URI parser decodes them (%HH).
func encodeQuery(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return v.Encode()
}
