// Package testserver starts the real servers the remote tests and the
// remote benchmark talk to, on 127.0.0.1 only, each in its own temp
// directory: OpenSSH sshd (Debian openssh-server) with a temp host key
// and an authorized client key, and versitygw (S3) over a posix
// directory. Both come from scripts/install-deps.sh. A missing binary
// skips a test on a developer's machine but fails it in CI (CI=true):
// a skipped proof in CI would read as a passed one.
package testserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TB is what the helpers need from a test or the benchmark.
type TB interface {
	Helper()
	Fatalf(format string, a ...any)
	Skipf(format string, a ...any)
	Cleanup(func())
	TempDir() string
	Logf(format string, a ...any)
}

var _ TB = (*testing.T)(nil)

// Need returns the path of a server binary, or skips (fails in CI).
func Need(t TB, name string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not installed: run scripts/install-deps.sh", name)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing server is a failure, not a skip)", msg)
	}
	t.Skipf("%s", msg)
	return ""
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t TB, port int, cmd *exec.Cmd, logf string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			b, _ := os.ReadFile(logf)
			t.Fatalf("%s did not listen on %d: %v\n%s", cmd.Path, port, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SSHD is a running OpenSSH server.
type SSHD struct {
	Port       int
	Root       string // temp dir with keys and config
	Dir        string // a directory for uploads (absolute)
	Key        string // client private key, authorized
	KnownHosts string // a known_hosts file with the server's key
	HostPub    string // the server's (first) public host key line
	// HostKeys are the server's public host key lines by type
	// ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa").
	HostKeys map[string]string
	// CAPub is the public key line of the CA that signed the first host
	// key's certificate (SSHDConfig.Cert), for @cert-authority lines.
	CAPub    string
	User     string
	bin, cfg string
	cmd      *exec.Cmd
}

// SSHDConfig says how StartSSHDWith sets up the server.
type SSHDConfig struct {
	// KeyTypes are the host keys' types as ssh-keygen -t takes them;
	// default ed25519. The first is HostPub and the one certified.
	KeyTypes []string
	// Cert makes a CA (ssh-keygen) and serves a host certificate for the
	// first key, valid for the principal 127.0.0.1 from an hour ago for
	// a day, or for CertValidity (ssh-keygen -V) when given.
	Cert         bool
	CertValidity string
	// Extra lines go into sshd_config.
	Extra []string
}

// URL is sftp://user@127.0.0.1:port/<Dir>.
func (s *SSHD) URL() string {
	return fmt.Sprintf("sftp://%s@127.0.0.1:%d%s", s.User, s.Port, s.Dir)
}

// StartSSHD starts sshd with a fresh ed25519 host key; extra lines go
// into its config (e.g. "ForceCommand internal-sftp" for an sftp-only
// account).
func StartSSHD(t TB, extra ...string) *SSHD {
	t.Helper()
	return StartSSHDWith(t, SSHDConfig{Extra: extra})
}

// StartSSHDWith starts sshd with the host keys (and certificate) c asks
// for.
func StartSSHDWith(t TB, c SSHDConfig) *SSHD {
	t.Helper()
	bin := Need(t, "sshd", "/usr/sbin/sshd")
	keygen := Need(t, "ssh-keygen")
	if _, err := os.Stat("/run/sshd"); err != nil {
		t.Fatalf("sshd needs /run/sshd: run scripts/install-deps.sh")
	}
	if len(c.KeyTypes) == 0 {
		c.KeyTypes = []string{"ed25519"}
	}
	root := t.TempDir()
	s := &SSHD{Root: root, Dir: filepath.Join(root, "remote"), bin: bin, User: currentUser(), HostKeys: map[string]string{}}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	gen := func(typ, name string) string {
		t.Helper()
		f := filepath.Join(root, name)
		out, err := exec.Command(keygen, "-q", "-t", typ, "-N", "", "-C", name, "-f", f).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -t %s: %v\n%s", typ, err, out)
		}
		pub, _ := os.ReadFile(f + ".pub")
		return strings.TrimSpace(string(pub))
	}
	var hostKeys []string
	for i, typ := range c.KeyTypes {
		name := "host_" + typ
		line := gen(typ, name)
		ff := strings.Fields(line)
		s.HostKeys[ff[0]] = ff[0] + " " + ff[1]
		if i == 0 {
			s.HostPub = line
		}
		hostKeys = append(hostKeys, "HostKey "+filepath.Join(root, name))
	}
	if c.Cert {
		s.CAPub = gen("ed25519", "host_ca")
		first := filepath.Join(root, "host_"+c.KeyTypes[0])
		validity := c.CertValidity
		if validity == "" {
			validity = "-1h:+1d"
		}
		out, err := exec.Command(keygen, "-q", "-s", filepath.Join(root, "host_ca"), "-h", "-I", "testserver", "-n", "127.0.0.1", "-V", validity, first+".pub").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
		}
		hostKeys = append(hostKeys, "HostCertificate "+first+"-cert.pub")
	}
	gen("ed25519", "client_ed25519")
	s.Key = filepath.Join(root, "client_ed25519")
	pub, _ := os.ReadFile(s.Key + ".pub")
	if err := os.WriteFile(filepath.Join(root, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	s.Port = FreePort(t)
	s.KnownHosts = filepath.Join(root, "known_hosts")
	if err := os.WriteFile(s.KnownHosts, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	s.cfg = filepath.Join(root, "sshd_config")
	cfg := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
%s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
LogLevel ERROR
MaxStartups 100
# bash runs ~/.bashrc for a command over ssh only as a top-level shell:
# this keeps the account's rc files (a pyenv init waiting 60 s on a stale
# lock, seen here) out of the tests, which make a slow start-up on
# purpose where they need one.
SetEnv SHLVL=1
%s
`, s.Port, strings.Join(hostKeys, "\n"), filepath.Join(root, "sshd.pid"), filepath.Join(root, "authorized_keys"), strings.Join(c.Extra, "\n"))
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	s.Start(t)
	t.Cleanup(s.Kill)
	return s
}

// KnownHostsLine is the server's key in known_hosts form.
func (s *SSHD) KnownHostsLine() string {
	f := strings.Fields(s.HostPub)
	return fmt.Sprintf("[127.0.0.1]:%d %s %s", s.Port, f[0], f[1])
}

// Start (re)starts the server on the same port and keys.
func (s *SSHD) Start(t TB) {
	t.Helper()
	logf := filepath.Join(s.Root, "sshd.log")
	lf, _ := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	s.cmd = exec.Command(s.bin, "-D", "-e", "-f", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = lf, lf
	// Its own process group, so Kill reaches the per-connection children.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	go s.cmd.Wait()
	waitPort(t, s.Port, s.cmd, logf)
}

// Kill sends SIGKILL to sshd and every per-connection process it started
// (those call setsid, so the process group does not reach them).
func (s *SSHD) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		pids := descendants(s.cmd.Process.Pid)
		s.cmd.Process.Kill()
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return "root"
	}
	return strings.TrimSpace(string(out))
}

// S3 is a running versitygw.
type S3 struct {
	Port           int
	Dir            string // the posix root: one directory per bucket
	Access, Secret string
	// CAFile is the PEM of the private CA that signed the server's
	// certificate (StartS3TLS only).
	CAFile    string
	bin       string
	cmd       *exec.Cmd
	root      string
	cert, key string
	pool      *x509.CertPool
}

// Endpoint is http(s)://127.0.0.1:port.
func (s *S3) Endpoint() string {
	if s.cert != "" {
		return fmt.Sprintf("https://127.0.0.1:%d", s.Port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", s.Port)
}

// Env is what the tool needs to reach this server.
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.Access, "AWS_SECRET_ACCESS_KEY=" + s.Secret, "AWS_ENDPOINT_URL=" + s.Endpoint(), "AWS_REGION=us-east-1"}
}

// StartS3 starts versitygw on a fresh directory.
func StartS3(t TB) *S3 { t.Helper(); return startS3(t, false) }

// StartS3TLS starts versitygw serving HTTPS with a certificate for
// 127.0.0.1 signed by a new private CA (CAFile).
func StartS3TLS(t TB) *S3 { t.Helper(); return startS3(t, true) }

func startS3(t TB, withTLS bool) *S3 {
	t.Helper()
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if h, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(h, "go")
		}
	}
	bin := Need(t, "versitygw", filepath.Join(gopath, "bin", "versitygw"))
	root := t.TempDir()
	s := &S3{Dir: filepath.Join(root, "data"), Access: "testaccess", Secret: "testsecret-" + strconv.Itoa(os.Getpid()), bin: bin, root: root}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	s.Port = FreePort(t)
	if withTLS {
		s.makeCerts(t)
	}
	s.Start(t)
	t.Cleanup(s.Kill)
	return s
}

// makeCerts writes a CA and a server certificate for 127.0.0.1.
func (s *S3) makeCerts(t TB) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sqlite-backup test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("ca: %v", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("cert: %v", err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	s.CAFile, s.cert, s.key = filepath.Join(s.root, "ca.pem"), filepath.Join(s.root, "cert.pem"), filepath.Join(s.root, "key.pem")
	os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(s.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(s.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	s.pool = x509.NewCertPool()
	s.pool.AddCert(caCert)
}

// Start (re)starts the server on the same port and directory.
func (s *S3) Start(t TB) {
	t.Helper()
	logf := filepath.Join(s.root, "versitygw.log")
	lf, _ := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	args := []string{"--access", s.Access, "--secret", s.Secret, "--port", fmt.Sprintf("127.0.0.1:%d", s.Port)}
	if s.cert != "" {
		args = append(args, "--cert", s.cert, "--key", s.key)
	}
	s.cmd = exec.Command(s.bin, append(args, "posix", s.Dir)...)
	s.cmd.Stdout, s.cmd.Stderr = lf, lf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	go s.cmd.Wait()
	waitPort(t, s.Port, s.cmd, logf)
}

// Kill sends SIGKILL to the server.
func (s *S3) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Process.Kill()
	}
}

// Client is an S3 client of this server, for setting up buckets and
// checking objects independently of the tool's own code paths.
func (s *S3) Client(t TB) *minio.Client {
	t.Helper()
	o := &minio.Options{Creds: credentials.NewStaticV4(s.Access, s.Secret, ""), Region: "us-east-1"}
	if s.pool != nil {
		o.Secure = true
		o.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool}}
	}
	mc, err := minio.New(fmt.Sprintf("127.0.0.1:%d", s.Port), o)
	if err != nil {
		t.Fatalf("minio client: %v", err)
	}
	return mc
}

// MakeBucket creates a bucket through the S3 API (a plain mkdir lacks
// the gateway's metadata).
func (s *S3) MakeBucket(t TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}
