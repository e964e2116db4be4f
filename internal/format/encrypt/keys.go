package encrypt

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"sqlite-backup/internal/output/redact"
)

// ErrNoTerminal is returned for an identity that needs a passphrase when
// there is no terminal to ask on (cron, systemd, a pipe).
var ErrNoTerminal = errors.New("encrypted identity needs a terminal to ask for its passphrase")

// Passphrase asks the operator for the passphrase of the identity file
// name. It returns ErrNoTerminal when nobody can be asked.
type Passphrase func(name string) ([]byte, error)

// keyFileLimit bounds what is read of a key file: age's own limit.
const keyFileLimit = 16 << 20

// ParseRecipients turns --recipient values and --recipients-file files
// into age recipients, as `age -r` and `age -R` take them: native age
// keys (age1…, age1pq1…) and SSH public keys (ssh-ed25519, ssh-rsa).
// Plugin recipients are refused: this tool never starts another program.
// An error never quotes a recipients file's line, which could be a
// private key put in the wrong file.
func ParseRecipients(keys, files []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if redact.HasSecret(k) {
			return nil, privateKeyError("--recipient", k)
		}
		r, err := parseRecipient(k)
		if err != nil {
			// Never the whole value: a key with a typo may still be a
			// private key the patterns do not know.
			return nil, fmt.Errorf("--recipient %s: %s", shorten(k), strings.ReplaceAll(err.Error(), k, "…"))
		}
		out = append(out, r)
	}
	for _, name := range files {
		rs, err := parseRecipientsFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// privateKeyError says a private key was given where a public one
// belongs, and how to get the public one, without a byte of the key.
func privateKeyError(flag, k string) error {
	if strings.HasPrefix(strings.ToUpper(k), "AGE-") {
		return fmt.Errorf("%s: that is a private key (AGE-SECRET-KEY-…), not a recipient; give its public key (age-keygen -y KEYFILE)", flag)
	}
	return fmt.Errorf("%s: that is a private key, not a recipient; give its public key (ssh-keygen -y -f KEYFILE, or age-keygen -y KEYFILE)", flag)
}

// shorten names a value in a message by its first characters and its
// length, e.g. "age1qyqszqgp…" (62 characters).
func shorten(k string) string {
	const shown = 12
	r := []rune(k)
	if len(r) <= shown {
		return fmt.Sprintf("%q", k)
	}
	return fmt.Sprintf("%q (%d characters)", string(r[:shown])+"…", len(r))
}

func parseRecipient(s string) (age.Recipient, error) {
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		return age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1") && strings.Count(s, "1") > 1:
		return nil, errors.New("plugin recipients are not supported (this tool runs no other program)")
	case strings.HasPrefix(s, "age1"):
		return age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-"):
		return agessh.ParseRecipient(s)
	}
	return nil, errors.New("not an age (age1…) or SSH (ssh-ed25519, ssh-rsa) public key")
}

func parseRecipientsFile(name string) ([]age.Recipient, error) {
	b, err := readKeyFile(name)
	if err != nil {
		return nil, fmt.Errorf("--recipients-file %q: %w", name, err)
	}
	var out []age.Recipient
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, keyFileLimit)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("--recipients-file %q: line %d is not valid UTF-8", name, n)
		}
		r, err := parseRecipient(line)
		if err != nil {
			if redact.HasSecret(line) || strings.HasPrefix(strings.ToUpper(line), "AGE-") || strings.HasPrefix(line, "-----BEGIN") {
				return nil, fmt.Errorf("--recipients-file %q: line %d is a private key, not a recipient", name, n)
			}
			return nil, fmt.Errorf("--recipients-file %q: line %d: malformed recipient", name, n)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--recipients-file %q: %v", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--recipients-file %q: no recipients found", name)
	}
	return out, nil
}

// ParseIdentities reads --identity files as `age -i` does: age identity
// files (AGE-SECRET-KEY-1…, one a line, # comments), SSH private keys
// (ed25519, RSA) and passphrase-protected age files holding an identity
// file. Anything that needs a passphrase asks for it now, through ask,
// so that a wrong passphrase stops the command before it does any work.
func ParseIdentities(files []string, ask Passphrase) ([]age.Identity, error) {
	var out []age.Identity
	for _, name := range files {
		ids, err := parseIdentityFile(name, ask)
		if err != nil {
			return nil, fmt.Errorf("--identity %q: %w", name, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

func parseIdentityFile(name string, ask Passphrase) ([]age.Identity, error) {
	b, err := readKeyFile(name)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(b, []byte(Magic)):
		return encryptedIdentity(name, b, ask)
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN AGE ENCRYPTED FILE-----")):
		return nil, errors.New("armored (PEM) age files are not supported as identities; store it binary: age -d … | age -p -o key.age")
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return sshIdentity(name, b, ask)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		if bytes.HasPrefix(trimmed, []byte("age1")) || bytes.HasPrefix(trimmed, []byte("ssh-")) {
			return nil, errors.New("that is a public key (recipient), not an identity")
		}
		return nil, err
	}
	return ids, nil
}

// encryptedIdentity opens an identity file that `age -p` encrypted with
// a passphrase.
func encryptedIdentity(name string, b []byte, ask Passphrase) ([]age.Identity, error) {
	if ask == nil {
		return nil, ErrNoTerminal
	}
	pass, err := ask(name)
	if err != nil {
		return nil, err
	}
	id, err := age.NewScryptIdentity(string(pass))
	clear(pass)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, errors.New("wrong passphrase, or not a passphrase-encrypted file")
		}
		return nil, fmt.Errorf("decrypt: %v", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, keyFileLimit))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %v", err)
	}
	defer clear(plain)
	ids, err := age.ParseIdentities(bytes.NewReader(plain))
	if err != nil {
		return nil, fmt.Errorf("inside the encrypted file: %v", err)
	}
	return ids, nil
}

// sshIdentity parses an SSH private key, asking for its passphrase if it
// has one.
func sshIdentity(name string, b []byte, ask Passphrase) ([]age.Identity, error) {
	id, err := agessh.ParseIdentity(b)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("malformed SSH private key: %v", err)
		}
		return []age.Identity{id}, nil
	}
	if ask == nil {
		return nil, ErrNoTerminal
	}
	pass, err := ask(name)
	if err != nil {
		return nil, err
	}
	key, err := ssh.ParseRawPrivateKeyWithPassphrase(b, pass)
	clear(pass)
	if err != nil {
		return nil, fmt.Errorf("SSH private key: %v", err)
	}
	switch k := key.(type) {
	case *ed25519.PrivateKey:
		i, err := agessh.NewEd25519Identity(*k)
		return []age.Identity{i}, err
	case *rsa.PrivateKey:
		i, err := agessh.NewRSAIdentity(k)
		return []age.Identity{i}, err
	}
	return nil, fmt.Errorf("SSH key type %T is not supported (ed25519 or RSA)", key)
}

func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, keyFileLimit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > keyFileLimit {
		return nil, errors.New("file too long for a key file")
	}
	return b, nil
}
