// Package manifest writes and reads the two sidecars beside every backup:
// <backup>.sha256 in sha256sum format, so `sha256sum -c` works on a
// server without this tool, and <backup>.json describing how, when and
// from what the backup was made, with per-table row counts and (with
// --deep) a logical hash of the content. Both are written to a private
// temp file, fsynced and renamed into place, so a reader never sees half
// a sidecar.
//
// Beside an encrypted backup the .json keeps nothing of the content in
// the clear: the table names, row counts, content hashes and shrink
// warnings are sealed with age to the backup's own recipients in the
// "sealed" field (base64), and Open restores them given an identity.
package manifest

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/sys/fsx"
)

// Version of the manifest format; bumped on incompatible changes.
const Version = 1

// Suffixes of the sidecar files.
const (
	SHA256Suffix = ".sha256"
	JSONSuffix   = ".json"
)

// Table is what the manifest knows about one table.
type Table struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// SHA256 is the table's logical hash (only with --deep).
	SHA256 string `json:"sha256,omitempty"`
}

// Content is the logical content of the snapshot.
type Content struct {
	// From says where it was computed: "source" (inside the read
	// transaction that pinned the snapshot) or "copy" (VACUUM INTO
	// cannot run inside a transaction, so it is computed from the copy).
	From   string  `json:"from"`
	Tables []Table `json:"tables"`
	// SHA256 hashes every row of every table and the schema (--deep).
	SHA256 string `json:"sha256,omitempty"`
	// Algorithm names the stable row encoding of SHA256.
	Algorithm string `json:"algorithm,omitempty"`
}

// TotalRows sums the row counts.
func (c *Content) TotalRows() int64 {
	var n int64
	for _, t := range c.Tables {
		n += t.Rows
	}
	return n
}

// Rows maps table name to row count.
func (c *Content) Rows() map[string]int64 {
	m := make(map[string]int64, len(c.Tables))
	for _, t := range c.Tables {
		m[t.Name] = t.Rows
	}
	return m
}

// Shrink is one table whose row count fell past the shrink guard.
type Shrink struct {
	Table   string  `json:"table"`
	Before  int64   `json:"before"`
	After   int64   `json:"after"`
	Percent float64 `json:"percent"` // how much it fell
}

// Manifest is the <backup>.json sidecar.
type Manifest struct {
	Version int    `json:"manifest_version"`
	Backup  string `json:"backup"` // base name of the backup file
	Source  string `json:"source"`
	// Host, BackupDir and Owner say whose backup this is: the machine,
	// the backup directory and that directory's ID (its
	// .sqlite-backup-id, kept while it has remotes). On a remote, a run
	// prunes and cleans up only its owner's backups, and refuses a place
	// that holds another owner's backups of the same file name. In the
	// clear, also beside an encrypted backup: pruning needs them without
	// a key.
	Host           string     `json:"host,omitempty"`
	BackupDir      string     `json:"backup_dir,omitempty"`
	Owner          string     `json:"owner,omitempty"`
	SourceSize     int64      `json:"source_size"`
	SourcePages    int        `json:"source_pages"`
	PageSize       int        `json:"page_size"`
	SQLiteVersion  string     `json:"sqlite_version"`
	Method         string     `json:"method"`
	Compression    string     `json:"compression"`
	Size           int64      `json:"size"`                        // bytes of the backup file
	Uncompressed   int64      `json:"uncompressed_size,omitempty"` // bytes of the database inside
	SHA256         string     `json:"sha256"`                      // of the backup file as stored
	Started        time.Time  `json:"started"`
	Finished       time.Time  `json:"finished"`
	DurationMS     int64      `json:"duration_ms"`
	ToolVersion    string     `json:"tool_version"`
	Verify         string     `json:"verify"` // "ok", "skipped", or "proven" (an unchecked increment)
	Check          string     `json:"check"`  // integrity_check, quick_check or none
	VerifiedAt     *time.Time `json:"verified_at,omitempty"`
	Content        *Content   `json:"content,omitempty"`
	ContentError   string     `json:"content_error,omitempty"`
	ShrinkGuard    float64    `json:"shrink_guard_pct"`
	ShrinkWarnings []Shrink   `json:"shrink_warnings,omitempty"`
	ComparedWith   string     `json:"compared_with,omitempty"` // previous backup for the shrink guard
	// Shrank says the shrink guard fired, in the clear even when the
	// warnings themselves are sealed: pruning must see the flag without
	// a key, or it would remove the last good backup before the shrink.
	Shrank bool `json:"shrank,omitempty"`
	// Encryption is "age" for an encrypted backup; Content, ContentError
	// and ShrinkWarnings are then in Sealed only.
	Encryption string `json:"encryption,omitempty"`
	// Sealed is the Private part as JSON, encrypted with age to the
	// backup's recipients, base64-encoded: anyone with a key reads it
	// with jq -r .sealed FILE.json | base64 -d | age -d -i KEY.
	Sealed string `json:"sealed,omitempty"`
	// Chain places the backup in an incremental chain (--incremental).
	Chain *Chain `json:"chain,omitempty"`
}

// Verified says the backup passed what it had to pass when it was
// written: its check (Verify "ok"), or for an increment of a chain its
// proof (Verify "proven": base + chain + it give the snapshot read,
// whether or not its materialized state was checked, see Chain). Only
// such backups go off-site and serve the shrink guard.
func (m *Manifest) Verified() bool {
	return m.Verify == "ok" || m.Verify == "proven" && m.Chain != nil && m.Chain.Kind == KindIncrement
}

// Flagged says the shrink guard fired for this backup (read from the
// clear flag when the warnings are sealed).
func (m *Manifest) Flagged() bool { return m.Shrank || len(m.ShrinkWarnings) > 0 }

// Private is what the manifest of an encrypted backup only holds sealed:
// it tells about the data itself.
type Private struct {
	Content        *Content `json:"content,omitempty"`
	ContentError   string   `json:"content_error,omitempty"`
	ShrinkWarnings []Shrink `json:"shrink_warnings,omitempty"`
}

// Seal moves the private part of m into Sealed, encrypted for rcpts.
func (m *Manifest) Seal(rcpts []age.Recipient) error {
	b, err := json.Marshal(Private{m.Content, m.ContentError, m.ShrinkWarnings})
	if err != nil {
		return err
	}
	sealed, err := encrypt.SealBytes(b, rcpts)
	if err != nil {
		return fmt.Errorf("encrypt manifest of %q: %v", m.Backup, err)
	}
	m.Encryption = "age"
	m.Shrank = m.Flagged()
	m.Sealed = base64.StdEncoding.EncodeToString(sealed)
	m.Content, m.ContentError, m.ShrinkWarnings = nil, "", nil
	return nil
}

// Open decrypts Sealed with ids and puts the private part back in m. A
// manifest with nothing sealed is left as it is. name names the manifest
// in errors.
func (m *Manifest) Open(name string, ids []age.Identity) error {
	if m.Sealed == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(m.Sealed)
	if err != nil {
		return &encrypt.CorruptError{Path: name, Err: fmt.Errorf("sealed: %v", err)}
	}
	b, err := encrypt.OpenBytes(name, raw, ids)
	if err != nil {
		return err
	}
	var p Private
	if err := json.Unmarshal(b, &p); err != nil {
		return &encrypt.CorruptError{Path: name, Err: fmt.Errorf("sealed: %v", err)}
	}
	m.Content, m.ContentError, m.ShrinkWarnings = p.Content, p.ContentError, p.ShrinkWarnings
	return nil
}

// Write writes m as <backup>.json atomically.
func Write(backup string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteAtomic(backup+JSONSuffix, append(b, '\n'))
}

// Read reads <backup>.json. A missing manifest is fs.ErrNotExist.
func Read(backup string) (*Manifest, error) {
	p := backup + JSONSuffix
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read manifest %q: not a regular file", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read manifest %q: %w", p, fsx.PathErr(err))
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read manifest %q: %w", p, err)
	}
	return &m, nil
}

// FileSHA256 hashes a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %q: %w", path, fsx.PathErr(err))
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return "", fmt.Errorf("hash %q: %w", path, fsx.PathErr(err))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteSHA256 writes <backup>.sha256 in sha256sum's format: the hash, two
// spaces, the base name (relative, so the directory can be moved and
// `cd dir && sha256sum -c app.db.X.sha256` still works).
func WriteSHA256(backup, sum string) error {
	return WriteAtomic(backup+SHA256Suffix, []byte(SHA256Line(sum, filepath.Base(backup))))
}

// SHA256Line is one line of sha256sum's output for name, newline
// included: the hash, two spaces, the name. A name with a backslash, a
// newline or a carriage return is escaped as GNU sha256sum escapes it
// (the line starts with a backslash, and \\, \n, \r stand for those), so
// `sha256sum -c` reads it back.
func SHA256Line(sum, name string) string {
	if strings.ContainsAny(name, "\\\n\r") {
		r := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")
		return "\\" + sum + "  " + r.Replace(name) + "\n"
	}
	return sum + "  " + name + "\n"
}

// ParseSHA256Line reads one line of a checksum file the way
// `sha256sum -c` does (GNU coreutils): leading blanks skipped, an
// optional backslash that marks an escaped name, 64 hex digits, one
// blank, an optional mode character (' ' text, '*' binary), and the
// name, which is the rest of the line: spaces, quotes, a leading dash
// and any byte but a newline are part of it. A name is never split on
// whitespace. sum is lower case.
func ParseSHA256Line(line string) (sum, name string, ok bool) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimLeft(line, " \t")
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	if len(line) < 66 || (line[64] != ' ' && line[64] != '\t') {
		return "", "", false
	}
	sum = line[:64]
	if _, err := hex.DecodeString(sum); err != nil {
		return "", "", false
	}
	name = line[65:]
	// "HASH  NAME" or "HASH *NAME"; GNU also takes "HASH NAME" (one
	// blank, no mode character), as long as the name is not one byte.
	if len(name) > 1 && (name[0] == ' ' || name[0] == '*') {
		name = name[1:]
	}
	if escaped {
		var ok bool
		if name, ok = unescapeName(name); !ok {
			return "", "", false
		}
	}
	if name == "" {
		return "", "", false
	}
	return strings.ToLower(sum), name, true
}

// unescapeName undoes sha256sum's escaping: \\ \n \r; any other
// backslash sequence makes the line invalid, as for sha256sum -c.
func unescapeName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// ErrNoSHA256 reports that a file has no .sha256 sidecar.
var ErrNoSHA256 = errors.New("no .sha256 sidecar")

// ReadSHA256 returns the hash recorded in <file>.sha256 for file. The
// sidecar must name the file (sha256sum format, text or binary marker).
func ReadSHA256(file string) (string, error) {
	p := file + SHA256Suffix
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoSHA256
	}
	if err != nil {
		return "", fmt.Errorf("read %q: %w", p, fsx.PathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("read %q: not a regular file", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %q: %w", p, fsx.PathErr(err))
	}
	base := filepath.Base(file)
	for _, line := range strings.Split(string(b), "\n") {
		// A path in the line (sha256sum run from elsewhere) names the
		// same file: only its base name must match.
		if sum, name, ok := ParseSHA256Line(line); ok && (name == base || filepath.Base(name) == base) {
			return sum, nil
		}
	}
	return "", fmt.Errorf("read %q: no sha256 line for %q", p, base)
}

// WriteAtomic writes data to path through a private temp file in the
// same directory, fsync, rename and directory fsync. An existing file at
// path is replaced: sidecars are rewritten when a backup is re-described.
func WriteAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := fsx.CreateTemp(dir, filepath.Base(path), 0o600)
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %q: %w", path, fsx.PathErr(err))
	}
	fsx.SyncDir(dir)
	return nil
}
