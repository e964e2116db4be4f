package chain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// IsIncrement says whether path names an increment
// (<db-file>.YYYYMMDD_HHMMSS[-N].ltx[.age]), by its name.
func IsIncrement(path string) bool {
	return retention.KindOf(filepath.Base(path)) == retention.KindIncrement
}

// Loaded is what Load found: the points of one database in a directory
// by base name, and the backups of it that are no point (no readable
// manifest, or one that places it in no chain) with the reason.
type Loaded struct {
	Points map[string]Point
	Not    map[string]string
	dir    string
}

// Load reads the chain records of the backups of database file db in dir
// from their manifests, each with the hash its .sha256 sidecar records
// (else the manifest's). source, if set, leaves out backups whose
// manifest names another source.
func Load(dir, db, source string, loc *time.Location) (*Loaded, error) {
	bs, err := retention.Find(dir, db, loc)
	if err != nil {
		return nil, err
	}
	l := &Loaded{Points: map[string]Point{}, Not: map[string]string{}, dir: dir}
	for _, b := range bs {
		m, err := manifest.Read(b.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			l.Not[b.Name] = fmt.Sprintf("its manifest %s is missing", b.Name+manifest.JSONSuffix)
			continue
		case err != nil:
			l.Not[b.Name] = err.Error()
			continue
		case source != "" && m.Source != "" && m.Source != source:
			continue
		case m.Chain == nil:
			l.Not[b.Name] = "its manifest places it in no incremental chain"
			continue
		}
		sum, err := manifest.ReadSHA256(b.Path)
		if err != nil {
			sum = m.SHA256
		}
		l.Points[b.Name] = Point{Path: b.Path, SHA256: sum, Chain: *m.Chain}
	}
	return l, nil
}

// Resolve is chain.Resolve over the loaded points: a point that is there
// but no point of a chain is named with the reason.
func (l *Loaded) Resolve(target string) ([]Point, error) {
	pts, err := Resolve(l.Points, target)
	var fe *verify.FailedError
	if errors.As(err, &fe) {
		if why, ok := l.Not[filepath.Base(fe.Result.Path)]; ok {
			fe.Result.Problems = []string{fmt.Sprintf("%s, and %s needs it", why, target)}
		}
	}
	if err != nil && !errors.As(err, &fe) {
		if why, ok := l.Not[target]; ok {
			// The file is there, but nothing says what it applies to: as
			// unusable as a damaged one.
			return nil, damaged(filepath.Join(l.dir, target), "%s: it cannot be materialized", why)
		}
	}
	return pts, err
}

// OpenOptions say how a point's chain is read.
type OpenOptions struct {
	// Identities open encrypted (.age) files of the chain.
	Identities []age.Identity
	// TempDir is where a private directory takes the decrypted or
	// decompressed copies, and the materialized database (default
	// os.TempDir()).
	TempDir string
}

// ErrNeedIdentity is wrapped by Open's error when a file of the chain is
// encrypted and no identity was given.
var ErrNeedIdentity = errors.New("encrypted with age; give the private key that opens it")

// Opened is a point's chain ready to materialize: every file a plain one
// (an encrypted or compressed file was checked against its .sha256,
// then decrypted or decompressed into a private directory under its own
// name, which the manifests' parent names need).
type Opened struct {
	// Chain is the full, then every increment up to the point.
	Chain []Point
	// Files are the stored files of the chain, full first.
	Files     []string
	Encrypted bool
	held      *fsx.HeldDir
	stored    map[string]string // unpacked copy -> the stored file
}

// Open finds the chain of the point at path in its directory (Load,
// Resolve) and makes every file of it plain. A damaged or missing file
// fails with a *verify.FailedError naming it.
func Open(ctx context.Context, path string, o OpenOptions) (_ *Opened, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(abs)
	db, _, _, _, ok := retention.Parse(name, time.Local)
	if !ok {
		return nil, fmt.Errorf("point %q: not a backup name (<db-file>.YYYYMMDD_HHMMSS…)", path)
	}
	if _, err := os.Lstat(abs); err != nil {
		return nil, fmt.Errorf("point %q: %w", path, fsx.PathErr(err))
	}
	l, err := Load(filepath.Dir(abs), db, "", time.Local)
	if err != nil {
		return nil, err
	}
	pts, err := l.Resolve(name)
	if err != nil {
		return nil, err
	}
	return OpenChain(ctx, pts, o)
}

// OpenChain makes every file of a resolved chain (a full, then its
// increments in order, as Resolve returns them) plain, as Open does.
func OpenChain(ctx context.Context, pts []Point, o OpenOptions) (_ *Opened, err error) {
	if len(pts) == 0 {
		return nil, errors.New("open chain: no point given")
	}
	name := pts[len(pts)-1].Name()
	op := &Opened{Chain: append([]Point(nil), pts...), stored: map[string]string{}}
	for _, p := range pts {
		op.Files = append(op.Files, p.Path)
	}
	defer func() {
		if err != nil {
			op.Release()
		}
	}()
	for i, p := range pts {
		encrypted := encrypt.IsAge(p.Path)
		kind := compress.None
		if !encrypted && i == 0 {
			kind = compress.KindOf(p.Path)
		}
		if !encrypted && kind == compress.None {
			continue // read as it is; Materialize checks its hash
		}
		if encrypted {
			op.Encrypted = true
			if len(o.Identities) == 0 {
				return nil, fmt.Errorf("point %s: %s is %w", name, p.Name(), ErrNeedIdentity)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The stored bytes first: a damaged file is named as such, not
		// as one that fails to decrypt or decompress.
		if p.SHA256 != "" {
			sum, err := manifest.FileSHA256(p.Path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, damaged(p.Path, "missing (%s needs it)", name)
			}
			if err != nil {
				return nil, err
			}
			if sum != p.SHA256 {
				return nil, damaged(p.Path, "sha256 mismatch: file has %s, its .sha256 says %s (the file changed since it was written; %s needs it)", sum, p.SHA256, name)
			}
		}
		if op.held == nil {
			if op.held, err = fsx.MkdirHeld(o.TempDir, fsx.CheckDirPrefix); err != nil {
				dir := o.TempDir
				if dir == "" {
					dir = os.TempDir()
				}
				return nil, fmt.Errorf("private dir in %q: %w", dir, fsx.PathErr(err))
			}
		}
		var tmp string
		if encrypted {
			tmp, _, err = encrypt.DecryptTo(ctx, p.Path, op.held.Path, o.Identities)
		} else {
			tmp, err = compress.DecompressTo(ctx, p.Path, op.held.Path)
		}
		var ce *encrypt.CorruptError
		var cc *compress.CorruptError
		switch {
		case errors.As(err, &ce), errors.As(err, &cc):
			return nil, damaged(p.Path, "%v (%s needs it)", err, name)
		case err != nil:
			return nil, err
		}
		plain := filepath.Join(op.held.Path, p.Name())
		if err := os.Rename(tmp, plain); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("unpack %q: %w", p.Path, fsx.PathErr(err))
		}
		op.stored[plain] = p.Path
		// Checked above as stored; the plain copy has no hash of its own.
		op.Chain[i].Path, op.Chain[i].SHA256 = plain, ""
	}
	return op, nil
}

// Point is the stored file of the chain's last point.
func (op *Opened) Point() string { return op.Files[len(op.Files)-1] }

// Materialize materializes the chain (chain.Materialize). Without
// o.Path, the check runs in a temp file in the private directory if
// there is one, else in o.TempDir. Errors name the stored files.
func (op *Opened) Materialize(ctx context.Context, o MaterializeOptions) (*Materialized, error) {
	if o.Path == "" && op.held != nil {
		o.TempDir = op.held.Path
	}
	if o.Deep && o.DeepOf == "" {
		o.DeepOf = op.Point() // the manifest lies beside the stored file
	}
	m, err := Materialize(ctx, op.Chain, o)
	var fe *verify.FailedError
	if errors.As(err, &fe) {
		if s, ok := op.stored[fe.Result.Path]; ok {
			fe.Result.Path = s
		}
	}
	if m != nil {
		m.Point = op.Point()
		m.Check.Path = op.Point()
	}
	return m, err
}

// Dir is the private directory of the unpacked files, made in tempDir
// (os.TempDir() when "") if none was needed so far: a caller
// materializes into it. Release removes it.
func (op *Opened) Dir(tempDir string) (string, error) {
	if op.held == nil {
		h, err := fsx.MkdirHeld(tempDir, fsx.CheckDirPrefix)
		if err != nil {
			if tempDir == "" {
				tempDir = os.TempDir()
			}
			return "", fmt.Errorf("private dir in %q: %w", tempDir, fsx.PathErr(err))
		}
		op.held = h
	}
	return op.held.Path, nil
}

// Release removes the unpacked files with their private directory.
func (op *Opened) Release() {
	if op != nil && op.held != nil {
		op.held.Release()
		op.held = nil
	}
}

// CheckOptions tune Check.
type CheckOptions struct {
	Quick bool
	// Deep also compares the materialized database's content with the
	// point's manifest (verify --deep).
	Deep       bool
	TempDir    string
	Identities []age.Identity
	// Remote reaches a point given as URL/NAME: it is downloaded with
	// every file its chain needs into a private directory in TempDir,
	// checked there and removed; FetchProgress follows the downloads.
	Remote        remote.Options
	FetchProgress func(done, total int64)
}

// Check is verify of a point: its chain is opened and materialized into
// a temp file that is checked with integrity_check (or quick_check) and
// removed. As verify.File, a point that can be read but is not sound
// (a damaged or missing file of its chain, a state that does not add
// up, a failed check) is a Result with OK false and a nil error; a
// chain that is encrypted without an identity is a Result with
// NotChecked set.
func Check(ctx context.Context, path string, o CheckOptions) (verify.Result, error) {
	if remote.IsURL(path) {
		shown := remote.Redact(path)
		res := verify.Result{Path: shown, Check: "integrity_check"}
		if o.Quick {
			res.Check = "quick_check"
		}
		local, release, err := remote.FetchChainURL(ctx, path, o.Remote, o.TempDir, o.FetchProgress)
		var de *remote.DamagedError
		if errors.As(err, &de) {
			res.Problems = []string{"sha256 mismatch: " + de.Error()}
			if _, name, _ := remote.SplitObjectURL(path); name == de.Name {
				res.SHA256 = "mismatch"
			}
			return res, nil
		}
		if err != nil {
			return res, err
		}
		defer release()
		res, err = Check(ctx, local, o)
		res.Path = shown
		return res, err
	}
	res := verify.Result{Path: path, Check: "integrity_check"}
	if o.Quick {
		res.Check = "quick_check"
	}
	if fi, err := os.Stat(path); err != nil {
		return res, fmt.Errorf("verify %q: %w", path, fsx.PathErr(err))
	} else {
		res.Size = fi.Size()
	}
	op, err := Open(ctx, path, OpenOptions{Identities: o.Identities, TempDir: o.TempDir})
	failed := func(err error) (verify.Result, error) {
		var fe *verify.FailedError
		if !errors.As(err, &fe) {
			return res, fmt.Errorf("verify %q: %w", path, err)
		}
		res.Problems = fe.Result.Problems
		abs, _ := filepath.Abs(path)
		if at := fe.Result.Path; at != abs && at != "" && len(res.Problems) > 0 {
			// Another file of the chain: named, by its base name when it
			// lies beside the point.
			if filepath.Dir(at) == filepath.Dir(abs) {
				at = filepath.Base(at)
			}
			res.Problems = append([]string{at + ": " + fe.Result.Problems[0]}, fe.Result.Problems[1:]...)
		}
		if fe.Result.Path == abs && len(res.Problems) > 0 && strings.Contains(res.Problems[0], "sha256 mismatch") {
			res.SHA256 = "mismatch"
		}
		return res, nil
	}
	if errors.Is(err, ErrNeedIdentity) {
		// What can be checked without a key, as verify.File does: the
		// point's own hash and age header.
		if want, err := manifest.ReadSHA256(path); err == nil {
			sum, err := manifest.FileSHA256(path)
			if err != nil {
				return res, fmt.Errorf("verify %q: %w", path, err)
			}
			if sum != want {
				res.SHA256 = "mismatch"
				res.Problems = []string{fmt.Sprintf("sha256 mismatch: file has %s, %s.sha256 says %s (the file changed since it was written)", sum, path, want)}
				return res, nil
			}
			res.SHA256 = "ok"
		}
		if encrypt.IsAge(path) {
			if err := encrypt.CheckHeader(path); err != nil {
				var ce *encrypt.CorruptError
				if errors.As(err, &ce) {
					res.Problems = append(res.Problems, ce.Error())
					return res, nil
				}
				return res, fmt.Errorf("verify %q: %w", path, err)
			}
		}
		res.Encryption, res.Check = "age", "none"
		res.ContentChecked = new(false)
		res.NotChecked = "encrypted, give --identity"
		return res, nil
	}
	if err != nil {
		return failed(err)
	}
	defer op.Release()
	for _, f := range op.Files {
		res.Chain = append(res.Chain, filepath.Base(f))
	}
	m, err := op.Materialize(ctx, MaterializeOptions{Quick: o.Quick, TempDir: o.TempDir, Deep: o.Deep, Identities: o.Identities})
	if err != nil {
		return failed(err)
	}
	res.OK = true
	res.Content = m.Check.Content
	if sum, err := manifest.ReadSHA256(path); err == nil && sum != "" {
		res.SHA256 = "ok" // checked against it before it was read
	}
	res.PageSize, res.Pages = m.Check.PageSize, m.Check.Pages
	res.Uncompressed = m.Check.Size
	if op.Encrypted {
		res.Encryption = "age"
		res.ContentChecked = new(true)
	}
	return res, nil
}
