package cli

import (
	"errors"
	"strings"

	"filippo.io/age"

	"sqlite-backup/internal/format/encrypt"
)

// EncryptFlags choose whom a backup is encrypted for (age -r / -R).
type EncryptFlags struct {
	Recipient      []string `short:"r" sep:"none" placeholder:"KEY" help:"Encrypt the backup with age for KEY: an age public key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeat for several. The backup is named …[.zst].age and opens with: age -d -i KEYFILE."`
	RecipientsFile []string `short:"R" sep:"none" placeholder:"FILE" help:"Encrypt for every public key in FILE (one a line, # comments), as age -R reads it; repeatable."`
}

// IdentityFlags name the private keys that open encrypted backups (age -i).
type IdentityFlags struct {
	Identity []string `short:"i" sep:"none" placeholder:"FILE" help:"Open encrypted (.age) backups with the private key in FILE: an age identity file, an SSH private key, or an identity file encrypted with age -p (asks for its passphrase on the terminal); repeatable."`
}

// recipients parses the flags before any work: a malformed key is a
// usage error (exit 2).
func (f *EncryptFlags) recipients() ([]age.Recipient, error) {
	if len(f.Recipient) == 0 && len(f.RecipientsFile) == 0 {
		return nil, nil
	}
	for _, k := range f.Recipient {
		// A file given to -r (age's own mistake to make): -R reads one.
		if isKeyText(k) {
			continue
		}
		if fileExists(k) || strings.ContainsRune(k, '/') || strings.HasSuffix(k, ".txt") || strings.HasSuffix(k, ".pub") {
			return nil, usagef("give the file with -R (--recipients-file): sqlite-backup --source app.db -R "+shellQuote(k),
				"--recipient %q: -r takes a public key (age1…, ssh-ed25519 …), not a file", k)
		}
	}
	rs, err := encrypt.ParseRecipients(f.Recipient, f.RecipientsFile)
	if err != nil {
		return nil, usagef("sqlite-backup --source app.db -r age1…   (age-keygen -o key.txt makes a key and prints its public key)", "%v", err)
	}
	return rs, nil
}

// identities parses --identity files before any work; an encrypted one
// asks for its passphrase on the terminal now.
func (f *IdentityFlags) identities() ([]age.Identity, error) {
	if len(f.Identity) == 0 {
		return nil, nil
	}
	ids, err := encrypt.ParseIdentities(f.Identity, ttyPassphrase)
	if errors.Is(err, encrypt.ErrNoTerminal) {
		return nil, usagef("run it from a terminal, or give an unencrypted identity file readable only by this user (chmod 600)", "%v", err)
	}
	if err != nil {
		return nil, usagef("sqlite-backup verify FILE.age -i key.txt   (an age identity file or an SSH private key)", "%v", err)
	}
	return ids, nil
}

// isKeyText says whether s starts like a key rather than a file name.
func isKeyText(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "age1") || strings.HasPrefix(s, "ssh-") || strings.HasPrefix(s, "AGE-")
}
