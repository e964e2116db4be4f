// Package sftp is the sftp:// remote: a directory on an SSH server,
// spoken to with github.com/pkg/sftp over golang.org/x/crypto/ssh. The
// server's host key is always checked against a known_hosts file and
// accepted or refused as OpenSSH's ssh would (hostkey.go); an unknown,
// changed or revoked key is refused with its fingerprint and the
// commands that fix it. An upload goes to a hidden 0700 temp directory
// in the target directory as a 0600 file, is fsynced where the server
// offers fsync@openssh.com, hashed (by the server where the account may
// run commands and does so in time, else read back and hashed here),
// and only then renamed to its final name, so a reader never finds a
// partial or unproven file under a backup's name, and no other account
// on the server reads it.
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

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
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
	read *sftp.Client // downloads (readConn)
	// readMax is the read session's packet size, the longest read it
	// may ask for (copyAhead's chunks never exceed it).
	readMax int

	lastCheck string // how the last upload was checked, for tests
	// slowHash: the server's hash missed its deadline once; the
	// following uploads are read back without waiting for it again.
	slowHash bool
}

// LastCheck says how the last upload was checked: "server hash", "read
// back", or "read back (server hash too slow)".
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
		return c.fail(remote.KindNoDir, false, err, "create the directory on the server: "+c.sshCmd("mkdir -p -m 700 -- "+quote(c.dir)))
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
	conn, sc, rd := c.ssh, c.sftp, c.read
	c.sftp, c.read, c.ssh = nil, nil, nil
	c.mu.Unlock()
	// The SSH connection first, and outside the lock: closing an SFTP
	// session waits for its reader, which on a stalled link only the
	// closed connection ends (a cancelled download must not hang here,
	// nor every other call of this Client behind the lock).
	if conn != nil {
		conn.Close()
	}
	if rd != nil {
		rd.Close()
	}
	if sc != nil {
		sc.Close()
	}
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
	kh, err := loadKnownHosts(khPath)
	if err != nil {
		return nil, c.fail(remote.KindHostKey, false, fmt.Errorf("read known hosts %q: %w", khPath, err), "ssh-keygen -l -f "+quote(khPath)+" lists the keys it holds and names a bad line")
	}
	cl, err := c.dial(ctx, auths, kh.check, kh.algorithms(c.addr))
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

// keyscanType is a key's type as ssh-keyscan -t and the server's key
// file names (/etc/ssh/ssh_host_<type>_key.pub) spell it.
func keyscanType(k ssh.PublicKey) string {
	switch t := k.Type(); {
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	default:
		return strings.TrimPrefix(t, "ssh-")
	}
}

// keyscan is the command that adds the server's key of type t to
// khPath, creating its directory when it does not exist yet.
func (c *Client) keyscan(khPath, t string) string {
	cmd := "ssh-keyscan -t " + t
	if c.port != "22" {
		cmd += " -p " + c.port
	}
	cmd += " " + quote(c.host) + " >> " + quote(khPath)
	if d := filepath.Dir(khPath); !exists(d) {
		cmd = "mkdir -p -m 700 " + quote(d) + " && " + cmd
	}
	return cmd
}

// sshCmd is the ssh command line that runs the shell command remoteCmd
// on the server: quoted once for the local shell; remoteCmd quotes what
// it holds for the server's shell.
func (c *Client) sshCmd(remoteCmd string) string {
	cmd := "ssh"
	if c.port != "22" {
		cmd += " -p " + c.port
	}
	return cmd + " " + quote(c.user+"@"+c.host) + " " + quote(remoteCmd)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// hostKeyFail words a refused host key: what the server offered, its
// fingerprint as ssh-keygen -lf prints it, what the file holds, and the
// commands that fix it once the fingerprint is checked.
func (c *Client) hostKeyFail(e *hostKeyError, khPath string) error {
	fp := ssh.FingerprintSHA256(e.key)
	offered := e.key.Type() + " key " + fp
	if e.cert != "" {
		offered = "a certificate for its " + offered + " (" + e.cert + ")"
	}
	t := keyscanType(e.key)
	check := fmt.Sprintf("ask the server's owner whether %s is its key (on the server: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub)", fp, t)
	switch e.why {
	case hostUnknown:
		return c.fail(remote.KindHostKey, false, fmt.Errorf("unknown host key: %s is not in %q; the server offers %s", e.addr, khPath, offered),
			check+"; if it is, add it: "+c.keyscan(khPath, t))
	case hostChanged:
		var lines []string
		for _, k := range e.known {
			lines = append(lines, fmt.Sprintf("line %d (%s)", k.Line, k.Key.Type()))
		}
		return c.fail(remote.KindHostKey, false, fmt.Errorf("HOST KEY CHANGED for %s: the server offers %s, but %q holds another key for it at %s: refused, this may be an attack", e.addr, offered, khPath, strings.Join(lines, ", ")),
			check+"; if it is, replace the old key: ssh-keygen -R "+quote(e.addr)+" -f "+quote(khPath)+" && "+c.keyscan(khPath, t))
	}
	what := "its key"
	if r := e.known[0]; !bytes.Equal(r.Key.Marshal(), e.key.Marshal()) {
		what = "the CA that signed its certificate (" + r.Key.Type() + " " + ssh.FingerprintSHA256(r.Key) + ")"
	}
	return c.fail(remote.KindHostKey, false, fmt.Errorf("REVOKED host key for %s: the server offers %s, and %q marks %s @revoked (line %d): refused, the key may be stolen", e.addr, offered, khPath, what, e.known[0].Line),
		"a revoked key is never accepted: ask the server's owner to replace it, then add the new key after checking its fingerprint")
}

func (c *Client) dialErr(err error, khPath string) error {
	var he *hostKeyError
	var ne net.Error
	switch {
	case errors.As(err, &he):
		return c.hostKeyFail(he, khPath)
	case strings.Contains(err.Error(), "no common algorithm for host key"):
		return c.fail(remote.KindHostKey, false, err, "the server offers no host key type OpenSSH accepts by default (ssh-ed25519, ecdsa-sha2-*, rsa-sha2-*)")
	case strings.Contains(err.Error(), "no common algorithm"):
		return c.fail(remote.KindUnreachable, false, err, "")
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
		return nil, none, c.fail(remote.KindAuth, false, errors.New("no SSH key: no ssh-agent (SSH_AUTH_SOCK) and no ~/.ssh/id_ed25519 or ~/.ssh/id_rsa"), "sqlite-backup --remote "+quote(c.url)+" --ssh-key /root/.ssh/backup_ed25519")
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

// tmpRE matches this tool's temp names: .<final>.sqlite-backup-tmp-<hex>,
// a private directory holding <final> while it is uploaded (a plain
// file of that name was left by older versions).
var tmpRE = regexp.MustCompile(`^\.(.+)\.sqlite-backup-tmp-[0-9a-f]{16}$`)

// Put uploads into a private temp directory beside the final name,
// fsyncs the file while the server hashes it (or reads it back and
// hashes it here), then renames it into place.
//
// The file is 0600 from before its first byte and unreachable by anyone
// else from its creation: SFTP's open can carry a mode but pkg/sftp
// sends none, so the server creates it 0666 less its umask (0644 as a
// rule) in a directory others may list and watch; a chmod after the
// open leaves a moment in which another account can open it and read
// everything written later. So the file is created in a directory made
// 0700 before anything is in it, and chmodded 0600 before it is
// written; the rename keeps the mode.
func (c *Client) Put(ctx context.Context, name string, src remote.Source) error {
	sc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmpDir := path.Join(c.dir, "."+name+".sqlite-backup-tmp-"+hex.EncodeToString(rnd[:]))
	tmp := path.Join(tmpDir, name)
	final := path.Join(c.dir, name)
	// A cancelled context closes the connection: the blocked write
	// returns and the temp file is removed on the next connection.
	stop := context.AfterFunc(ctx, c.drop)
	defer stop()
	made, ok := false, false
	defer func() {
		if made {
			// Briefly: an interrupted run must not hang on a dead server;
			// the next run removes what is left (Cleanup).
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if sc, err := c.conn(cctx); err == nil {
				if !ok {
					sc.Remove(tmp)
				}
				sc.RemoveDirectory(tmpDir)
			}
		}
	}()
	if err := sc.Mkdir(tmpDir); err != nil {
		return c.ctxErr(ctx, c.classify("create "+tmpDir, err))
	}
	made = true
	if err := sc.Chmod(tmpDir, 0o700); err != nil {
		return c.ctxErr(ctx, c.classify("chmod 700 "+tmpDir, err))
	}
	// The server-side hash's shell starts while the bytes go out, so
	// its start-up (the account's shell rc files) costs no time.
	var sh *serverHash
	if src.Size >= serverHashMin && !c.slowHash {
		sh = c.startHash(tmp)
	}
	defer sh.close()
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return c.ctxErr(ctx, c.classify("create "+tmp, err))
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return c.ctxErr(ctx, c.classify("chmod 600 "+tmp, err))
	}
	t0 := time.Now()
	n, err := f.ReadFrom(&counting{SectionReader: io.NewSectionReader(src.R, 0, src.Size), progress: src.Progress})
	sent := time.Since(t0)
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
	if err := c.check(ctx, sc, sh, hashWait(sent), tmp, src); err != nil {
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

// hashFloor is the least time the server's hash gets once every byte
// is acknowledged. The hash's session starts with the upload, so
// normally it is done at once; what delays it is the account's shell
// start-up (rc files: 1-3 s for a pyenv init here, 60 s when pyenv
// waited on a stale lock) or a slow disk.
var hashFloor = 10 * time.Second

// hashWait is how long the server's hash may take after the upload: as
// long as the upload took, and hashFloor at least. Reading the copy back
// costs about the upload's time again (same link, same size), so waiting
// longer for the server cannot beat it.
func hashWait(upload time.Duration) time.Duration { return max(hashFloor, upload) }

// check compares the server's copy with the source's size and sum: the
// server hashes it (sha256sum over an exec channel, which costs no
// transfer) where the account may run commands and does so within wait,
// else it is read back and hashed here.
func (c *Client) check(ctx context.Context, sc *sftp.Client, sh *serverHash, wait time.Duration, p string, src remote.Source) error {
	phase := func(s string) {
		if src.Phase != nil {
			src.Phase(s)
		}
	}
	size, sum := src.Size, src.SHA256
	if sh != nil {
		phase(remote.PhaseServerHash)
	}
	got, ok, late := sh.result(p, wait)
	if ok {
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
	if late {
		// Its shell may still be starting: end the session now.
		sh.close()
		c.slowHash = true
		c.lastCheck = "read back (server hash too slow)"
	}
	phase(remote.PhaseReadBack)
	rc, chunk, err := c.readConn(ctx)
	if err != nil {
		return err
	}
	g, err := rc.Open(p)
	if err != nil {
		return c.classify("read back "+p, err)
	}
	defer g.Close()
	h := sha256.New()
	n, err := copyAhead(g, h, chunk) // as a download reads: no hole after a short reply
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
	begun time.Time
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
	if h == nil || !h.begun.IsZero() {
		return
	}
	h.begun = time.Now()
	h.stdin.Write([]byte("\n"))
	h.stdin.Close()
}

// result waits up to wait after begin for the hash (begun here if it
// was not) and returns its output; ok is false when there is none to
// trust (no session, sftp-only account, no sha256sum, output other than
// one sha256sum line for p), late when it did not come in time.
func (h *serverHash) result(p string, wait time.Duration) (sum string, ok, late bool) {
	if h == nil {
		return "", false, false
	}
	h.begin()
	t := time.NewTimer(time.Until(h.begun.Add(wait)))
	defer t.Stop()
	select {
	case err := <-h.done:
		if err != nil {
			return "", false, false
		}
	case <-t.C:
		return "", false, true
	}
	// One sha256sum line naming p, read as sha256sum -c reads it: a
	// backup name with spaces is one name, not a reason to read back.
	out := strings.TrimSuffix(h.out.String(), "\n")
	sum, name, ok := manifest.ParseSHA256Line(out)
	if !ok || name != p || strings.Contains(out, "\n") {
		return "", false, false
	}
	return sum, true, false
}

func (h *serverHash) close() {
	if h != nil {
		h.sess.Close()
	}
}

// shellQuote always quotes: it builds the commands the server runs.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// quote is hint.Quote: a hint may be pasted, and a path in it must not
// run anything.
var quote = hint.Quote

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

// Check connects (host key, authentication) and proves the directory
// exists and takes an upload: it makes, chmods and removes a private
// temp directory and an empty 0600 file in it, as Put does.
func (c *Client) Check(ctx context.Context) error {
	sc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	fi, err := sc.Stat(c.dir)
	if err != nil {
		return c.classify("stat "+c.dir, err)
	}
	if !fi.IsDir() {
		return c.fail(remote.KindNoDir, false, fmt.Errorf("%s on the server is not a directory", c.dir), "give the directory the backups go to: sftp://user@host[:port]/abs/dir")
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	d := path.Join(c.dir, ".sqlite-backup-check.sqlite-backup-tmp-"+hex.EncodeToString(rnd[:]))
	f := path.Join(d, "sqlite-backup-check")
	writable := func(op string, err error) error {
		if err == nil {
			return nil
		}
		var se *sftp.StatusError
		if errors.Is(err, fs.ErrPermission) || errors.As(err, &se) {
			return c.fail(remote.KindIO, false, fmt.Errorf("directory %s is not writable by %s: %s: %w", c.dir, c.user, op, err), "the account needs to create, rename and remove files in it: "+c.sshCmd("ls -ld -- "+quote(c.dir)))
		}
		return c.classify(op, err)
	}
	if err := sc.Mkdir(d); err != nil {
		return writable("create "+d, err)
	}
	defer sc.RemoveDirectory(d)
	if err := sc.Chmod(d, 0o700); err != nil {
		return writable("chmod 700 "+d, err)
	}
	h, err := sc.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return writable("create "+f, err)
	}
	defer sc.Remove(f)
	err = h.Chmod(0o600)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return writable("chmod 600 "+f, err)
	}
	if err := sc.Remove(f); err != nil {
		return writable("remove "+f, err)
	}
	return nil
}

// Get streams a file from the server, with reads in flight (ahead).
func (c *Client) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	sc, chunk, err := c.readConn(ctx)
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
	// A cancelled context closes the connection, as in Put: the reads in
	// flight return, and the download ends with an error at once instead
	// of running to the end of the file.
	return &ahead{f: f, chunk: chunk, done: make(chan struct{}), stop: context.AfterFunc(ctx, c.drop)}, nil
}

// readChunk is the length of one read request of a download: OpenSSH's
// sftp-server answers up to 255 KiB in one reply (its
// SFTP_MAX_READ_LENGTH), and pkg/sftp takes replies up to 256 KiB. With
// 32 KiB requests, one per reply, sending the requests and taking the
// replies apart cost our side more CPU than the bytes: a 990 MiB
// download took 5.2 s against OpenSSH sftp's 3.7-4.1 s, and takes
// 3.0-3.5 s so (docs/REMOTE-PERFORMANCE.md). A server that answers less
// (older OpenSSH: 64 KiB) is asked for the rest of the chunk in a next
// request (pkg/sftp's ReadAt): slower, never short.
var readChunk = 255 << 10 // a var for tests: SetReadChunk

// readsInFlight chunks are asked for at once: 2 MiB, the window the SSH
// channel grants the server; more would only wait in the window.
const readsInFlight = 8

// readConn is a second SFTP session on the same SSH connection, made for
// downloads: its packets may be readChunk long. Uploads keep the
// default 32 KiB, which every server must take.
// It returns the session and its packet size, the chunk copyAhead reads
// with: a read no longer than the packet is one request that pkg/sftp
// asks again after a short reply; a longer one is split, and a short
// reply in a split read counts as the end of the file.
func (c *Client) readConn(ctx context.Context) (*sftp.Client, int, error) {
	if _, err := c.conn(ctx); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read != nil {
		return c.read, c.readMax, nil
	}
	if c.ssh == nil {
		return nil, 0, c.fail(remote.KindIO, true, errors.New("connection closed"), "")
	}
	sc, err := sftp.NewClient(c.ssh, sftp.MaxPacketUnchecked(readChunk))
	if err != nil {
		return nil, 0, c.fail(remote.KindUnreachable, true, fmt.Errorf("start sftp: %w", err), "")
	}
	c.read, c.readMax = sc, readChunk
	return sc, readChunk, nil
}

// ahead reads a remote file with readsInFlight requests of readChunk in
// flight however the caller reads it. io.Copy onto ahead gets WriteTo;
// a plain Read (a caller that wraps the stream) starts WriteTo into a
// pipe on the first call, which keeps the requests going while the
// caller works.
type ahead struct {
	f       *sftp.File
	chunk   int  // the read session's packet size
	started bool // Read started the copy into the pipe
	ended   bool // WriteTo copied the whole file
	pr      *io.PipeReader
	done    chan struct{}
	stop    func() bool // the context's AfterFunc
}

func (a *ahead) Read(p []byte) (int, error) {
	if a.ended {
		return 0, io.EOF
	}
	if !a.started {
		a.started = true
		pr, pw := io.Pipe()
		a.pr = pr
		go func() {
			defer close(a.done)
			_, err := copyAhead(a.f, pw, a.chunk)
			pw.CloseWithError(err) // nil: the reader gets io.EOF
		}()
	}
	return a.pr.Read(p)
}

func (a *ahead) WriteTo(w io.Writer) (int64, error) {
	if a.started || a.ended {
		return io.Copy(w, struct{ io.Reader }{a})
	}
	n, err := copyAhead(a.f, w, a.chunk)
	a.ended = err == nil
	return n, err
}

// Close stops the reads in flight and closes the file. The context's
// hook goes last: a cancel while the copy still waits on a stalled link
// closes the connection and ends the wait.
func (a *ahead) Close() error {
	if a.started {
		a.pr.CloseWithError(errors.New("closed"))
		<-a.done
	}
	a.stop()
	return a.f.Close()
}

// copyAhead copies f to w in order, in chunks of at most chunk bytes (no
// more than the session's packet size: see readConn). Worker j reads
// chunks j, j+n, j+2n… into its own buffer with ReadAt, which asks again
// for whatever a reply left short, and waits for w to have taken a chunk
// before it reads its next. pkg/sftp's own WriteTo is not used: it moves
// on after a short reply, leaving a hole in the stream. A small file gets
// one worker and a buffer of its size (from 32 KiB), as many files open
// at once (a Litestream restore's plan) must not each hold 2 MiB.
func copyAhead(f *sftp.File, w io.Writer, chunk int) (written int64, err error) {
	workers := readsInFlight
	if fi, err := f.Stat(); err == nil && fi.Size() < int64(workers*chunk) {
		// A file that grows meanwhile is still read to its end, only
		// with fewer reads in flight.
		size := fi.Size()
		workers = int(size/int64(chunk)) + 1
		if size < int64(chunk) {
			chunk = min(chunk, max(int(size)+1, 32<<10))
		}
	}
	type reply struct {
		n   int
		err error
	}
	type slot struct {
		buf   []byte
		ready chan reply
		free  chan struct{}
	}
	slots := make([]slot, workers)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(quit)
		wg.Wait() // no ReadAt outlives the copy: the file is closed next
	}()
	for j := range slots {
		s := &slots[j]
		s.buf = make([]byte, chunk)
		s.ready = make(chan reply, 1)
		s.free = make(chan struct{}, 1)
		s.free <- struct{}{}
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			for off := int64(j * chunk); ; off += int64(workers * chunk) {
				select {
				case <-s.free:
				case <-quit:
					return
				}
				n, err := f.ReadAt(s.buf, off)
				s.ready <- reply{n, err}
				if err != nil {
					return // the end of the file, or the copy ends here
				}
			}
		}(j)
	}
	for i := 0; ; i++ {
		s := &slots[i%workers]
		r := <-s.ready
		if r.n > 0 {
			m, err := w.Write(s.buf[:r.n])
			written += int64(m)
			if err != nil {
				return written, err
			}
		}
		switch {
		case r.err == io.EOF:
			return written, nil
		case r.err != nil:
			return written, r.err
		case r.n < chunk:
			// io.ReaderAt promises an error with a short read.
			return written, fmt.Errorf("read %d bytes at %d: %w", r.n, written, io.ErrUnexpectedEOF)
		}
		s.free <- struct{}{}
	}
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

// MkdirAll makes the directory name below the remote's directory, and
// its parents, 0700 (remote.DirMaker): the Litestream layout's level
// directories.
func (c *Client) MkdirAll(ctx context.Context, name string) error {
	sc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	p := c.dir
	for _, part := range strings.Split(rel, "/") {
		if part == "" {
			continue
		}
		p = path.Join(p, part)
		if fi, err := sc.Lstat(p); err == nil && fi.IsDir() {
			continue
		}
		if err := sc.Mkdir(p); err != nil {
			return c.classify("mkdir "+p, err)
		}
		if err := sc.Chmod(p, 0o700); err != nil {
			return c.classify("chmod 700 "+p, err)
		}
	}
	return nil
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

// Cleanup removes the temp directories (and older versions' temp files)
// of interrupted uploads; the file's mtime is when its upload last
// wrote.
func (c *Client) Cleanup(ctx context.Context, stale func(string, time.Time) bool) error {
	sc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	fis, err := sc.ReadDir(c.dir)
	if err != nil {
		return c.classify("list "+c.dir, err)
	}
	for _, fi := range fis {
		m := tmpRE.FindStringSubmatch(fi.Name())
		if m == nil {
			continue
		}
		p := path.Join(c.dir, fi.Name())
		switch {
		case fi.Mode().IsRegular():
			if stale(m[1], fi.ModTime()) {
				if err := sc.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return c.classify("remove "+p, err)
				}
			}
		case fi.IsDir():
			inner, mtime := path.Join(p, m[1]), fi.ModTime()
			if ifi, err := sc.Lstat(inner); err == nil {
				mtime = ifi.ModTime()
			}
			if stale(m[1], mtime) {
				if err := sc.Remove(inner); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return c.classify("remove "+inner, err)
				}
				if err := sc.RemoveDirectory(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return c.classify("remove "+p, err)
				}
			}
		}
	}
	return nil
}

// ListDir lists the regular files in dir below the remote directory
// (remote.Tree); a missing dir, or a file in its place, lists empty.
func (c *Client) ListDir(ctx context.Context, dir string) ([]remote.Object, error) {
	dir, err := remote.CleanTreePath(dir)
	if err != nil {
		return nil, c.fail(remote.KindUsage, false, err, "")
	}
	sc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	fis, err := sc.ReadDir(path.Join(c.dir, dir))
	var se *sftp.StatusError
	if errors.Is(err, fs.ErrNotExist) || errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile {
		return nil, nil
	}
	if err != nil {
		return nil, c.classify("list "+path.Join(c.dir, dir), err)
	}
	var out []remote.Object
	for _, fi := range fis {
		if fi.Mode().IsRegular() {
			out = append(out, remote.Object{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return out, nil
}

// GetPath streams the file at p below the remote directory (remote.Tree),
// with reads in flight as Get does (its buffers are small either way).
func (c *Client) GetPath(ctx context.Context, p string, _ bool) (io.ReadCloser, error) {
	p, err := remote.CleanTreePath(p)
	if err != nil {
		return nil, c.fail(remote.KindUsage, false, err, "")
	}
	return c.Get(ctx, p)
}
