package sftp

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHosts judges a server's host key the way OpenSSH's ssh does with
// StrictHostKeyChecking=yes and this file as its only known_hosts
// (check_host_key in sshconnect.c): x/crypto's knownhosts parses the file
// and matches names (hashed, [host]:port, patterns); the decisions
// around it are OpenSSH's:
//   - a certificate whose CA is not trusted for the host (or that is
//     invalid) is judged by its plain key, as OpenSSH does;
//   - on a port other than 22, a host that has no entry under
//     [host]:port is looked up under its bare name;
//   - a known key of any type that is not the offered one makes the
//     key "changed"; only a host with no entry at all is "unknown";
//   - a revoked key, or a certificate signed by a revoked CA, is refused
//     whatever else is known;
//   - the client asks first for the key types known for the host, so a
//     server with several keys shows the one known (algorithms).
type knownHosts struct {
	cb ssh.HostKeyCallback
	// lines of @cert-authority entries, and the keys of every entry by
	// marker: x/crypto's checks count a CA line as a key for its host.
	caLine    map[int]bool
	caKeys    map[string]bool
	plainKeys map[string]bool
}

// loadKnownHosts reads path; a missing file knows no host (as for ssh),
// so the first connection can still show the server's fingerprint.
func loadKnownHosts(path string) (*knownHosts, error) {
	k := &knownHosts{caLine: map[int]bool{}, caKeys: map[string]bool{}, plainKeys: map[string]bool{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k.cb, err = knownhosts.New()
		return k, err
	}
	if err != nil {
		return nil, err
	}
	if k.cb, err = knownhosts.New(path); err != nil {
		return nil, err
	}
	// Line numbers as knownhosts counts them (one per scanned line).
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		marker, _, key, _, _, err := ssh.ParseKnownHosts(sc.Bytes())
		if err != nil || key == nil {
			continue
		}
		switch marker {
		case "cert-authority":
			k.caLine[n] = true
			k.caKeys[string(key.Marshal())] = true
		case "":
			k.plainKeys[string(key.Marshal())] = true
		}
	}
	return k, nil
}

// Why a host key was refused.
const (
	hostUnknown = "unknown"
	hostChanged = "changed"
	hostRevoked = "revoked"
)

// hostKeyError is a refused host key with what the operator needs to
// judge it: the key the server offered and what the file holds.
type hostKeyError struct {
	why   string
	addr  string        // as known_hosts names it: host or [host]:port
	key   ssh.PublicKey // the plain key offered (a certificate's key)
	cert  string        // why the server's certificate was not enough, if it offered one
	known []knownhosts.KnownKey
}

func (e *hostKeyError) Error() string {
	return fmt.Sprintf("%s host key %s %s for %s", e.why, e.key.Type(), ssh.FingerprintSHA256(e.key), e.addr)
}

// check is the HostKeyCallback.
func (k *knownHosts) check(hostport string, remote net.Addr, key ssh.PublicKey) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	return k.judge(host, port, remote, key)
}

func (k *knownHosts) judge(host, port string, remote net.Addr, key ssh.PublicKey) error {
	addr := net.JoinHostPort(host, port)
	cert, isCert := key.(*ssh.Certificate)
	if !isCert {
		return k.judgePlain(host, port, remote, key)
	}
	for _, rk := range []ssh.PublicKey{cert.Key, cert.SignatureKey} {
		var re *knownhosts.RevokedError
		if errors.As(k.cb(addr, remote, rk), &re) {
			return &hostKeyError{why: hostRevoked, addr: knownhosts.Normalize(addr), key: cert.Key, known: []knownhosts.KnownKey{re.Revoked}}
		}
	}
	// A CA trusted for the host and a valid certificate (principal,
	// dates): accepted. No CA for [host]:port: OpenSSH looks under the
	// bare name. Either way what is left is the certificate's key.
	var certErr error
	if k.trustsCA(addr, cert.SignatureKey) {
		if certErr = k.cb(addr, remote, cert); certErr == nil {
			return nil
		}
	} else {
		if port != "22" && k.judge(host, "22", remote, cert) == nil {
			return nil
		}
		certErr = fmt.Errorf("its CA is not trusted for %s", knownhosts.Normalize(addr))
	}
	err := k.judgePlain(host, port, remote, cert.Key)
	var he *hostKeyError
	if errors.As(err, &he) {
		he.cert = strings.TrimPrefix(certErr.Error(), "ssh: ")
	}
	return err
}

func (k *knownHosts) judgePlain(host, port string, remote net.Addr, key ssh.PublicKey) error {
	addr := net.JoinHostPort(host, port)
	err := k.cb(addr, remote, key)
	var re *knownhosts.RevokedError
	var ke *knownhosts.KeyError
	switch {
	case err == nil && k.caKeys[string(key.Marshal())] && !k.plainKeys[string(key.Marshal())]:
		// x/crypto matched a @cert-authority line: OpenSSH trusts a CA
		// key only to sign certificates.
		err = &knownhosts.KeyError{}
	case err == nil:
		return nil
	case errors.As(err, &re):
		return &hostKeyError{why: hostRevoked, addr: knownhosts.Normalize(addr), key: key, known: []knownhosts.KnownKey{re.Revoked}}
	case !errors.As(err, &ke):
		return err
	}
	errors.As(err, &ke)
	var known []knownhosts.KnownKey
	for _, w := range ke.Want {
		if !k.caLine[w.Line] {
			known = append(known, w)
		}
	}
	if len(known) > 0 {
		return &hostKeyError{why: hostChanged, addr: knownhosts.Normalize(addr), key: key, known: known}
	}
	if port != "22" && k.judgePlain(host, "22", remote, key) == nil {
		return nil
	}
	return &hostKeyError{why: hostUnknown, addr: knownhosts.Normalize(addr), key: key}
}

// opensshHostKeyAlgos is OpenSSH 9's default HostKeyAlgorithms order
// (the ones x/crypto speaks): with the same preferences, a server with
// several keys shows this client the key it shows ssh.
var opensshHostKeyAlgos = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// keyFormat is the plain key type an algorithm signs with.
func keyFormat(algo string) string {
	a := strings.TrimSuffix(algo, "-cert-v01@openssh.com")
	if strings.HasPrefix(a, "rsa-sha2-") {
		return ssh.KeyAlgoRSA
	}
	return a
}

// entries are the file's lines for hostport (a CA line too).
func (k *knownHosts) entries(hostport string) []knownhosts.KnownKey {
	_, probe, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(probe)
	// A fresh key matches no entry: the error lists the host's entries.
	var ke *knownhosts.KeyError
	if errors.As(k.cb(hostport, addrString(hostport), signer.PublicKey()), &ke) {
		return ke.Want
	}
	return nil
}

func (k *knownHosts) trustsCA(hostport string, ca ssh.PublicKey) bool {
	for _, w := range k.entries(hostport) {
		if k.caLine[w.Line] && bytes.Equal(w.Key.Marshal(), ca.Marshal()) {
			return true
		}
	}
	return false
}

// algorithms orders the host key algorithms as OpenSSH's
// order_hostkeyalgs does: those of key types known for [host]:port
// first (their certificates too), every certificate first if a CA is
// trusted for it, the rest after.
func (k *knownHosts) algorithms(hostport string) []string {
	types, ca := map[string]bool{}, false
	for _, w := range k.entries(hostport) {
		if k.caLine[w.Line] {
			ca = true
		} else {
			types[w.Key.Type()] = true
		}
	}
	var first, last []string
	for _, a := range opensshHostKeyAlgos {
		if types[keyFormat(a)] || ca && strings.HasSuffix(a, "-cert-v01@openssh.com") {
			first = append(first, a)
		} else {
			last = append(last, a)
		}
	}
	return append(first, last...)
}

// addrString is a net.Addr for the lookups made before dialling.
type addrString string

func (a addrString) Network() string { return "tcp" }
func (a addrString) String() string  { return string(a) }
