// Package remote sends verified backups off the machine and brings them
// back. A Remote is one place (an SFTP directory, an S3 bucket prefix)
// behind five calls; each protocol lives in its own folder (remote/sftp,
// remote/s3) and registers its URL scheme, so this package and the core
// never import a backend: the CLI imports the ones it ships. Put is
// atomic and checked: nothing appears under a final name until the
// remote holds exactly the bytes whose SHA-256 the caller gave. Sync
// uploads a database's backups that a remote lacks, sidecars last, so a
// backup counts as complete there only with its .sha256 and .json.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"sqlite-backup/internal/output/hint"
)

// Object is one file on a remote.
type Object struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

// Remote is one off-site location. Names are base names (no slashes).
type Remote interface {
	// Put stores size bytes of r under name. It returns only once the
	// remote copy's size and SHA-256 (hex) were checked equal to size
	// and sum; before that, and after any failure, nothing is under name
	// that was not there before.
	Put(ctx context.Context, name string, src Source) error
	// Get streams name from the remote.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns every file in the remote location.
	List(ctx context.Context) ([]Object, error)
	// Stat describes name; a missing name is ErrNotExist.
	Stat(ctx context.Context, name string) (Object, error)
	Delete(ctx context.Context, name string) error
	// Cleanup removes what interrupted uploads of this tool left behind
	// (temp files, incomplete multipart uploads) for the final names that
	// stale accepts, given when the upload began.
	Cleanup(ctx context.Context, stale func(name string, started time.Time) bool) error
	Close() error
}

// DirMaker is a Remote whose place holds real directories (SFTP): it
// makes the directory name, a slash path below its place, with its
// parents, private to the account (0700), before a Remote opened there
// can take uploads. An S3 prefix needs none.
type DirMaker interface {
	MkdirAll(ctx context.Context, name string) error
}

// Tree is a Remote that also reads below its location, for a layout
// another tool wrote in subdirectories (a Litestream replica's
// ltx/<level>/ files). Paths are slash-separated, relative to the
// location, and never climb out of it.
type Tree interface {
	// ListDir returns the regular files directly in dir (names are base
	// names); a missing dir, or a name that is not a directory, is empty.
	ListDir(ctx context.Context, dir string) ([]Object, error)
	// GetPath streams the file at path; a missing one is ErrNotExist.
	// parallel asks for the backend's parallel download where it has
	// one (S3: ranged GETs, 20 MiB of parts in memory); without it one
	// stream, for a caller that reads many files at once.
	GetPath(ctx context.Context, path string, parallel bool) (io.ReadCloser, error)
}

// CleanTreePath checks a Tree path: relative, no "..", no empty part.
func CleanTreePath(p string) (string, error) {
	c := path.Clean(p)
	if p == "" || strings.HasPrefix(p, "/") || c != p || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("bad path %q below the remote location", p)
	}
	return c, nil
}

// Checker is a Remote that can tell before a backup, in a few round
// trips and leaving nothing behind, whether an upload could succeed:
// the server reached, its identity trusted, the credentials accepted,
// the place there and writable. The error is what Put would return.
type Checker interface {
	Check(ctx context.Context) error
}

// Source is what Put uploads: Size bytes of R whose SHA-256 is SHA256
// (hex). Progress, if set, is told how many bytes went out so far;
// Phase, if set, is told when the upload's check begins and how it is
// made (PhaseServerHash, PhaseReadBack), for a check can take as long
// as the upload.
type Source struct {
	R        io.ReaderAt
	Size     int64
	SHA256   string
	Progress func(done int64)
	Phase    func(phase string)
}

// How an upload is checked once its bytes went out, told to
// Source.Phase. A backend that checks during the upload (S3) reports
// none.
const (
	PhaseServerHash = "server hash" // the server hashes its copy
	PhaseReadBack   = "read back"   // the copy is read back and hashed here
)

// ErrNotExist is returned by Stat and Get for a missing name.
var ErrNotExist = errors.New("no such file on the remote")

// Options configure the backends; each reads what applies to it.
type Options struct {
	SSHKey     string // private key file; default ssh-agent, then ~/.ssh/id_ed25519, id_rsa
	KnownHosts string // default ~/.ssh/known_hosts
	S3Endpoint string // default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS
}

// Opener opens a remote from its parsed URL.
type Opener func(ctx context.Context, u *url.URL, o Options) (Remote, error)

var (
	mu       sync.Mutex
	backends = map[string]Opener{}
)

// Register makes scheme (e.g. "sftp") open with fn. Backends call it
// from init.
func Register(scheme string, fn Opener) {
	mu.Lock()
	defer mu.Unlock()
	backends[scheme] = fn
}

// Open opens the remote a URL names. A URL of the wrong shape is an
// *Error of KindUsage with a hint that shows the right ones.
func Open(ctx context.Context, raw string, o Options) (Remote, error) {
	r, err := open(ctx, raw, o)
	var re *Error
	if errors.As(err, &re) && re.Kind == KindUsage && hint.Of(err) == "" {
		err = hint.Wrap(err, "sqlite-backup --remote sftp://backup@host.example/srv/backups --remote s3://bucket/prefix")
	}
	return r, err
}

func open(ctx context.Context, raw string, o Options) (Remote, error) {
	u, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	mu.Lock()
	fn := backends[u.Scheme]
	mu.Unlock()
	if fn == nil {
		return nil, &Error{URL: Redact(raw), Kind: KindUsage, Err: fmt.Errorf("unknown scheme %q: use sftp://user@host[:port]/abs/dir or s3://bucket[/prefix]", u.Scheme)}
	}
	return fn(ctx, u, o)
}

// IsURL says whether a verify or restore argument names a backup on a
// remote rather than a local file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "sftp://") || strings.HasPrefix(s, "s3://")
}

// Parse checks a remote URL's shape: a scheme, a host (the SFTP server or
// the bucket) and no secrets in it.
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return nil, &Error{URL: Redact(raw), Kind: KindUsage, Err: errors.New("not a remote URL: use sftp://user@host[:port]/abs/dir or s3://bucket[/prefix]")}
	}
	if _, has := u.User.Password(); has {
		return nil, &Error{URL: Redact(raw), Kind: KindUsage, Err: errors.New("a password in the URL is refused (it would show in process lists and logs): use --ssh-key or ssh-agent")}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, &Error{URL: Redact(raw), Kind: KindUsage, Err: errors.New("a remote URL takes no ?query or #fragment")}
	}
	return u, nil
}

// Redact removes any password from a URL for messages: user:PASSWORD@
// in the authority, and what comes before an @ in a URL without // (such
// as key:secret@host, which parses as scheme "key").
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable remote URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if i := strings.LastIndex(u.Opaque, "@"); i >= 0 {
		u.Opaque = "xxxxx" + u.Opaque[i:]
	}
	return u.String()
}

// SplitObjectURL splits "sftp://h/dir/NAME" into the remote URL and the
// file name, for verify and restore of one remote backup.
func SplitObjectURL(raw string) (remoteURL, name string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", "", false
	}
	i := strings.LastIndex(u.Path, "/")
	if i < 0 || i == len(u.Path)-1 {
		return "", "", false
	}
	name = u.Path[i+1:]
	u.Path = u.Path[:i]
	return u.String(), name, true
}

// Kinds of remote failure, named in messages so an operator knows
// where to look.
const (
	KindUsage       = "bad remote"
	KindUnreachable = "unreachable"
	KindAuth        = "authentication failed"
	KindHostKey     = "host key"
	KindNoBucket    = "missing bucket"
	KindNoDir       = "missing directory"
	KindQuota       = "out of space or quota"
	KindMismatch    = "upload check failed"
	KindIO          = "transfer failed"
	KindConflict    = "name conflict"
	KindTLS         = "TLS certificate not trusted"
)

// Error is a remote's failure: which remote, what kind, why; Transient
// ones are retried.
type Error struct {
	URL       string // without secrets
	Kind      string
	Err       error
	Transient bool
}

func (e *Error) Error() string { return fmt.Sprintf("remote %s: %s: %v", e.URL, e.Kind, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// DamagedError is a download whose bytes are not the ones its .sha256
// sidecar records: the copy on the remote (or its sidecar) changed
// since it was written. It is a verdict on the backup, like a local
// sha256 mismatch (verify's exit 3), not trouble reaching the remote.
type DamagedError struct {
	Name      string // the backup's name on the remote
	Got, Want string // SHA-256 of the download, and the sidecar's
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s: downloaded sha256 %s, its .sha256 sidecar says %s (the copy on the remote changed since it was written)", e.Name, e.Got, e.Want)
}

// Fail is how a backend reports a failure: an Error for url, with the
// hint line h (a command that helps) when there is one.
func Fail(url, kind string, transient bool, err error, h string) error {
	var e error = &Error{URL: url, Kind: kind, Err: err, Transient: transient}
	if h != "" {
		e = hint.Wrap(e, "%s", h)
	}
	return e
}

// Retry runs fn up to attempts times while it fails with a transient
// Error, waiting base, 2*base, 4*base… between tries.
func Retry(ctx context.Context, attempts int, base time.Duration, fn func() error) error {
	var err error
	wait := base
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil {
			return nil
		}
		var re *Error
		if !errors.As(err, &re) || !re.Transient || i == attempts-1 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
	return err
}

// sortObjects orders by name for stable output.
func sortObjects(os []Object) {
	sort.Slice(os, func(i, j int) bool { return os[i].Name < os[j].Name })
}
