// Package sftp is the sftp:// remote: a directory on an SSH server,
// spoken to with github.com/pkg/sftp over golang.org/x/crypto/ssh. The
// server's host key is always checked against a known_hosts file; an
// unknown or changed key is refused with the ssh-keyscan line that adds
// it. An upload goes to a hidden temp name in the target directory, is
// fsynced where the server offers fsync@openssh.com, hashed (by the
// server where the account may run commands, else read back and hashed
// here), and only then renamed to its final name, so a reader never
// finds a partial or unproven file under a backup's name.
package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"sqlite-backup/remote"
)

func init() { remote.Register("sftp", Open) }

// Client is one SFTP remote. The connection is made on first use and
// made again after a failure, so a retry after a dropped connection
// reconnects.
type Client struct {
	url        string // for messages, no secrets
	user, addr string
	host, port string
	dir        string
	cfg        remote.Options

	mu   sync.Mutex
	ssh  *ssh.Client
	sftp *sftp.Client

	lastCheck string // how the last upload was checked, for tests
}

// LastCheck says how the last upload was checked: "server hash" or
// "read back".
func (c *Client) LastCheck() string { return c.lastCheck }

// Open checks the URL; the connection is made by the first call.
func Open(ctx context.Context, u *url.URL, o remote.Options) (remote.Remote, error) {
	c := &Client{url: u.String(), host: u.Hostname(), port: u.Port(), dir: path.Clean(u.Path), cfg: o}
	if c.port == "" {
		c.port = "22"
	}
	c.addr = net.JoinHostPort(c.host, c.port)
	c.user = u.User.Username()
	if c.user == "" {
		if me, err := user.Current(); err == nil {
			c.user = me.Username
		}
	}
	if !strings.HasPrefix(u.Path, "/") || c.dir == "/" && u.Path != "/" {
		return nil, c.fail(remote.KindUsage, false, errors.New("give an absolute directory: sftp://user@host[:port]/abs/dir"), "")
	}
	return c, nil
}

func (c *Client) fail(kind string, transient bool, err error, h string) error {
	return remote.Fail(c.url, kind, transient, err, h)
}

// classify turns a failure of an operation into a remote.Error; a
// connection-level failure drops the connection so the next call dials
// again.
func (c *Client) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *remote.Error
	if errors.As(err, &re) {
		return err
	}
	err = fmt.Errorf("%s: %w", op, err)
	var se *sftp.StatusError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c.fail(remote.KindNoDir, false, err, fmt.Sprintf("create the directory on the server: ssh -p %s %s@%s mkdir -p %s", c.port, c.user, c.host, c.dir))
	case errors.Is(err, fs.ErrPermission):
		return c.fail(remote.KindIO, false, err, "")
	case errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxFailure && strings.Contains(strings.ToLower(se.Error()), "space"):
		return c.fail(remote.KindQuota, false, err, "")
	case errors.As(err, &se):
		return c.fail(remote.KindIO, false, err, "")
	}
	// Anything else is the connection: EOF, reset, closed.
	c.drop()
	return c.fail(remote.KindIO, true, err, "")
}

func (c *Client) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil {
		c.sftp.Close()
	}
	if c.ssh != nil {
		c.ssh.Close()
	}
	c.sftp, c.ssh = nil, nil
}

// Close ends the connection.
func (c *Client) Close() error { c.drop(); return nil }

func (c *Client) conn(ctx context.Context) (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	auths, closeAgent, err := c.auth()
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	khPath := c.cfg.KnownHosts
	if khPath == "" {
		khPath = filepath.Join(home(), ".ssh", "known_hosts")
	}
	check, err := knownhosts.New(khPath)
	if err != nil {
		return nil, c.fail(remote.KindHostKey, false, fmt.Errorf("read known hosts %q: %w", khPath, err), c.keyscan(khPath))
	}
	var algos []string
	for try := 0; ; try++ {
		cl, err := c.dial(ctx, auths, check, algos)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) > 0 && try == 0 {
			// known_hosts may hold another type of key for this host
			// than the one the server offered first: ask for those.
			algos = keyAlgos(ke.Want)
			if len(algos) > 0 {
				continue
			}
		}
		if err != nil {
			return nil, c.dialErr(err, khPath)
		}
		// 32 requests of 32 KiB: 1 MiB in flight. With 64 (2 MiB, as
		// much as OpenSSH's channel window) writes to a loopback sshd
		// took 1.5-2x as long; 8-32 were alike (docs/REMOTE.md).
		sc, err := sftp.NewClient(cl, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(32))
		if err != nil {
			cl.Close()
			return nil, c.fail(remote.KindUnreachable, true, fmt.Errorf("start sftp: %w", err), "the server must offer the sftp subsystem (Subsystem sftp internal-sftp in sshd_config)")
		}
		c.ssh, c.sftp = cl, sc
		return sc, nil
	}
}

func (c *Client) dial(ctx context.Context, auths []ssh.AuthMethod, check ssh.HostKeyCallback, algos []string) (*ssh.Client, error) {
	d := net.Dialer{Timeout: 15 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{User: c.user, Auth: auths, HostKeyCallback: check, HostKeyAlgorithms: algos, Timeout: 15 * time.Second}
	// The handshake is bounded too, by ctx's deadline if sooner.
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	cc, chans, reqs, err := ssh.NewClientConn(nc, c.addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

func keyAlgos(want []knownhosts.KnownKey) []string {
	var out []string
	for _, k := range want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			out = append(out, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		default:
			out = append(out, t)
		}
	}
	return out
}

func (c *Client) keyscan(khPath string) string {
	host := c.host
	if c.port != "22" {
		return fmt.Sprintf("check the key's fingerprint with the server's owner, then: ssh-keyscan -p %s %s >> %s", c.port, host, khPath)
	}
	return fmt.Sprintf("check the key's fingerprint with the server's owner, then: ssh-keyscan %s >> %s", host, khPath)
}

func (c *Client) dialErr(err error, khPath string) error {
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	var ne net.Error
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return c.fail(remote.KindHostKey, false, fmt.Errorf("unknown host key: %s is not in %s", c.addr, khPath), c.keyscan(khPath))
	case errors.As(err, &ke):
		kh := knownhosts.Normalize(c.addr)
		return c.fail(remote.KindHostKey, false, fmt.Errorf("HOST KEY CHANGED for %s (%s line %d): refused, this may be an attack", c.addr, ke.Want[0].Filename, ke.Want[0].Line),
			fmt.Sprintf("if the server's key really changed, check the new fingerprint with its owner, then: ssh-keygen -R '%s' -f %s && %s", kh, khPath, strings.TrimPrefix(c.keyscan(khPath), "check the key's fingerprint with the server's owner, then: ")))
	case errors.As(err, &re):
		return c.fail(remote.KindHostKey, false, fmt.Errorf("host key of %s is revoked in %s", c.addr, khPath), "")
	case strings.Contains(err.Error(), "unable to authenticate"):
		return c.fail(remote.KindAuth, false, fmt.Errorf("user %q: %w", c.user, err), "give the key the server accepts: --ssh-key FILE, or load it into ssh-agent")
	case errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return c.fail(remote.KindUnreachable, true, err, "")
	}
	return c.fail(remote.KindUnreachable, true, err, "")
}

// auth is --ssh-key alone when given, else the agent, then the default
// key files that exist and need no passphrase.
func (c *Client) auth() ([]ssh.AuthMethod, func(), error) {
	none := func() {}
	if c.cfg.SSHKey != "" {
		s, err := readKey(c.cfg.SSHKey)
		if err != nil {
			return nil, none, c.fail(remote.KindAuth, false, err, "give an unencrypted key file, or load the key into ssh-agent and leave out --ssh-key")
		}
		return []ssh.AuthMethod{ssh.PublicKeys(s)}, none, nil
	}
	var signers []ssh.Signer
	closeAgent := none
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if ac, err := net.Dial("unix", sock); err == nil {
			if ss, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, ss...)
			}
			closeAgent = func() { ac.Close() }
		}
	}
	for _, f := range []string{"id_ed25519", "id_rsa"} {
		if s, err := readKey(filepath.Join(home(), ".ssh", f)); err == nil {
			signers = append(signers, s)
		}
	}
	if len(signers) == 0 {
		closeAgent()
		return nil, none, c.fail(remote.KindAuth, false, errors.New("no SSH key: no ssh-agent (SSH_AUTH_SOCK) and no ~/.ssh/id_ed25519 or ~/.ssh/id_rsa"), "sqlite-backup --remote "+c.url+" --ssh-key /root/.ssh/backup_ed25519")
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}

func readKey(p string) (ssh.Signer, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read SSH key %q: %w", p, err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("SSH key %q is protected by a passphrase", p)
	}
	if err != nil {
		// The parser's message never contains key material.
		return nil, fmt.Errorf("SSH key %q: %w", p, err)
	}
	return s, nil
}

func home() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	return "/root"
}

// tmpRE matches this tool's temp names: .<final>.sqlite-backup-tmp-<hex>.
var tmpRE = regexp.MustCompile(`^\.(.+)\.sqlite-backup-tmp-[0-9a-f]{16}$`)

// Put uploads to a temp name, fsyncs it while the server hashes it (or
// reads it back and hashes it here), then renames it into place.
func (c *Client) Put(ctx context.Context, name string, src remote.Source) error {
	sc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(c.dir, "."+name+".sqlite-backup-tmp-"+hex.EncodeToString(rnd[:]))
	final := path.Join(c.dir, name)
	// A cancelled context closes the connection: the blocked write
	// returns and the temp file is removed on the next connection.
	stop := context.AfterFunc(ctx, c.drop)
	defer stop()
	ok := false
	defer func() {
		if !ok {
			// Briefly: an interrupted run must not hang on a dead server;
			// the next run removes what is left (Cleanup).
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if sc, err := c.conn(cctx); err == nil {
				sc.Remove(tmp)
			}
		}
	}()
	// The server-side hash's shell starts while the bytes go out, so
	// its start-up (the account's shell rc files) costs no time.
	var sh *serverHash
	if src.Size >= serverHashMin {
		sh = c.startHash(tmp)
	}
	defer sh.close()
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return c.ctxErr(ctx, c.classify("create "+tmp, err))
	}
	n, err := f.ReadFrom(&counting{SectionReader: io.NewSectionReader(src.R, 0, src.Size), progress: src.Progress})
	if err == nil && n != src.Size {
		err = fmt.Errorf("wrote %d of %d bytes", n, src.Size)
	}
	if err == nil {
		// Every write is acknowledged (ReadFrom waits for all replies),
		// so the bytes the server hashes are the file's final bytes; it
		// reads them from its page cache while fsync writes them to
		// disk. The rename waits for both.
		sh.begin()
		if serr := f.Sync(); serr != nil && !unsupported(serr) {
			err = fmt.Errorf("fsync: %w", serr)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c.ctxErr(ctx, c.classify("upload "+tmp, err))
	}
	if err := c.check(ctx, sc, sh, tmp, src.Size, src.SHA256); err != nil {
		return c.ctxErr(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, posix := sc.HasExtension("posix-rename@openssh.com"); posix {
		err = sc.PosixRename(tmp, final)
	} else {
		sc.Remove(final) // plain SFTP rename refuses to replace
		err = sc.Rename(tmp, final)
	}
	if err != nil {
		return c.classify("rename to "+final, err)
	}
	ok = true
	return nil
}

// check compares the server's copy with size and sum: the server hashes
// it (sha256sum over an exec channel, which costs no transfer) where the
// account may run commands, else it is read back and hashed here.
func (c *Client) check(ctx context.Context, sc *sftp.Client, sh *serverHash, p string, size int64, sum string) error {
	if got, ok := sh.result(p); ok {
		c.lastCheck = "server hash"
		fi, err := sc.Lstat(p)
		if err != nil {
			return c.classify("stat "+p, err)
		}
		if fi.Size() != size || got != sum {
			return c.fail(remote.KindMismatch, true, fmt.Errorf("%s on the server is %d bytes, sha256 %s; expected %d bytes, sha256 %s", p, fi.Size(), got, size, sum), "")
		}
		return nil
	}
	c.lastCheck = "read back"
	g, err := sc.Open(p)
	if err != nil {
		return c.classify("read back "+p, err)
	}
	defer g.Close()
	h := sha256.New()
	n, err := g.WriteTo(h)
	if err != nil {
		return c.classify("read back "+p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return c.fail(remote.KindMismatch, true, fmt.Errorf("%s on the server is %d bytes, sha256 %s; expected %d bytes, sha256 %s", p, n, got, size, sum), "")
	}
	return nil
}

// serverHashMin: below it a read-back is cheaper than a session.
const serverHashMin = 1 << 20

// serverHash is sha256sum started on the server before the upload; it
// waits for a line on stdin, sent once every write is acknowledged.
type serverHash struct {
	sess  *ssh.Session
	stdin io.WriteCloser
	out   bytes.Buffer
	done  chan error
	begun bool
}

// startHash starts the hash's session, or returns nil where the
// account cannot run commands.
func (c *Client) startHash(p string) *serverHash {
	c.mu.Lock()
	cl := c.ssh
	c.mu.Unlock()
	if cl == nil {
		return nil
	}
	sess, err := cl.NewSession()
	if err != nil {
		return nil
	}
	h := &serverHash{sess: sess, done: make(chan error, 1)}
	if h.stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return nil
	}
	sess.Stdout = &h.out
	// p is our own temp name in the URL's directory (absolute, so no
	// option), quoted for the shell all the same. openssl uses the CPU's
	// SHA extensions, coreutils' sha256sum often does not (4x slower).
	q := shellQuote(p)
	if err := sess.Start("read x && (openssl dgst -sha256 -r " + q + " 2>/dev/null || sha256sum -b -- " + q + ")"); err != nil {
		sess.Close()
		return nil
	}
	go func() { h.done <- sess.Wait() }()
	return h
}

// begin lets the hash run: call it only once every write to the file
// has been acknowledged.
func (h *serverHash) begin() {
	if h == nil || h.begun {
		return
	}
	h.begun = true
	h.stdin.Write([]byte("\n"))
	h.stdin.Close()
}

// result waits for the hash (begun here if it was not) and returns its
// output; ok is false when there is none to trust (no session,
// sftp-only account, no sha256sum, output other than one sha256sum line
// for p).
func (h *serverHash) result(p string) (string, bool) {
	if h == nil {
		return "", false
	}
	h.begin()
	if err := <-h.done; err != nil {
		return "", false
	}
	f := strings.Fields(h.out.String())
	if len(f) != 2 || len(f[0]) != 64 || strings.TrimPrefix(f[1], "*") != p {
		return "", false
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return "", false
	}
	return strings.ToLower(f[0]), true
}

func (h *serverHash) close() {
	if h != nil {
		h.sess.Close()
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ctxErr prefers the interruption to the broken connection it caused.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func unsupported(err error) bool {
	var se *sftp.StatusError
	return errors.Is(err, sftp.ErrSSHFxOpUnsupported) || (errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported)
}

// counting reports progress and keeps Size, which pkg/sftp uses to
// write with many requests in flight.
type counting struct {
	*io.SectionReader
	progress func(int64)
	done     int64
}

func (r *counting) Read(p []byte) (int, error) {
	n, err := r.SectionReader.Read(p)
	r.done += int64(n)
	if r.progress != nil && n > 0 {
		r.progress(r.done)
	}
	return n, err
}

// Get streams a file from the server.
func (c *Client) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	sc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	f, err := sc.Open(path.Join(c.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s/%s: %w", c.url, name, remote.ErrNotExist)
	}
	if err != nil {
		return nil, c.classify("open "+name, err)
	}
	return &ahead{f: f, done: make(chan struct{})}, nil
}

// ahead reads a remote file with many requests in flight however the
// caller reads it. pkg/sftp keeps up to 32 reads outstanding only in
// its WriteTo (a plain Read of a small buffer is one request, one round
// trip); a caller that wraps the stream (a context, a hash) hides WriteTo
// from io.Copy. So the first Read starts WriteTo into a pipe, which
// keeps the requests going while the caller works; io.Copy onto ahead
// itself still gets WriteTo directly.
type ahead struct {
	f       *sftp.File
	started bool
	pr      *io.PipeReader
	done    chan struct{}
}

func (a *ahead) Read(p []byte) (int, error) {
	if !a.started {
		a.started = true
		pr, pw := io.Pipe()
		a.pr = pr
		go func() {
			defer close(a.done)
			_, err := a.f.WriteTo(pw)
			pw.CloseWithError(err) // nil: the reader gets io.EOF
		}()
	}
	return a.pr.Read(p)
}

func (a *ahead) WriteTo(w io.Writer) (int64, error) {
	if a.started {
		return io.Copy(w, struct{ io.Reader }{a})
	}
	return a.f.WriteTo(w)
}

// Close stops the reads in flight and closes the file.
func (a *ahead) Close() error {
	if a.started {
		a.pr.CloseWithError(errors.New("closed"))
		<-a.done
	}
	return a.f.Close()
}

// List returns the regular files in the directory, temp files too.
func (c *Client) List(ctx context.Context) ([]remote.Object, error) {
	sc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	fis, err := sc.ReadDir(c.dir)
	if err != nil {
		return nil, c.classify("list "+c.dir, err)
	}
	var out []remote.Object
	for _, fi := range fis {
		if fi.Mode().IsRegular() {
			out = append(out, remote.Object{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return out, nil
}

// Stat describes one file.
func (c *Client) Stat(ctx context.Context, name string) (remote.Object, error) {
	sc, err := c.conn(ctx)
	if err != nil {
		return remote.Object{}, err
	}
	fi, err := sc.Lstat(path.Join(c.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return remote.Object{}, fmt.Errorf("%s/%s: %w", c.url, name, remote.ErrNotExist)
	}
	if err != nil {
		return remote.Object{}, c.classify("stat "+name, err)
	}
	return remote.Object{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes one file; a missing one is fine.
func (c *Client) Delete(ctx context.Context, name string) error {
	sc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	if err := sc.Remove(path.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return c.classify("remove "+name, err)
	}
	return nil
}

// Cleanup removes temp files of interrupted uploads; the temp file's
// mtime is when its upload last wrote.
func (c *Client) Cleanup(ctx context.Context, stale func(string, time.Time) bool) error {
	os, err := c.List(ctx)
	if err != nil {
		return err
	}
	for _, o := range os {
		m := tmpRE.FindStringSubmatch(o.Name)
		if m != nil && stale(m[1], o.ModTime) {
			if err := c.Delete(ctx, o.Name); err != nil {
				return err
			}
		}
	}
	return nil
}
