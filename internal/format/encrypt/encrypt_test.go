package encrypt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"sqlite-backup/internal/format/compress"
)

// The age CLI (Debian's age package) is the independent client: what
// Seal writes must open with `age -d`, what `age -e` writes must open
// with DecryptTo.

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/install-deps.sh installs it)", tool)
		}
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return out
}

// keygen makes an age key pair with age-keygen and returns the identity
// file and the public key.
func keygen(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	key := filepath.Join(dir, name)
	run(t, nil, "age-keygen", "-o", key)
	pub := strings.TrimSpace(string(run(t, nil, "age-keygen", "-y", key)))
	return key, pub
}

func sample(t *testing.T, dir string, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b[:n/2]) // half random, half zeros: compressible
	p := filepath.Join(dir, "plain.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func recipients(t *testing.T, keys ...string) []age.Recipient {
	t.Helper()
	rs, err := ParseRecipients(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func identities(t *testing.T, files ...string) []age.Identity {
	t.Helper()
	ids, err := ParseIdentities(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func seal(t *testing.T, src, dir string, kind compress.Kind, rs []age.Recipient) (string, Sealed) {
	t.Helper()
	dst := filepath.Join(dir, "out.age")
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Seal(context.Background(), src, dst, kind, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dst, s
}

func TestSealOpensWithAgeCLI(t *testing.T) {
	need(t, "age", "age-keygen", "zstd", "gzip", "sha256sum")
	for _, kind := range []compress.Kind{compress.None, compress.Zstd, compress.Gzip} {
		t.Run(string(kind), func(t *testing.T) {
			dir := t.TempDir()
			key, pub := keygen(t, dir, "key.txt")
			src, want := sample(t, dir, 3<<20+17)
			dst, s := seal(t, src, dir, kind, recipients(t, pub))
			if s.Uncompressed != int64(len(want)) {
				t.Errorf("Uncompressed = %d, want %d", s.Uncompressed, len(want))
			}
			sum := strings.Fields(string(run(t, nil, "sha256sum", dst)))[0]
			if sum != s.SHA256 {
				t.Errorf("Sealed.SHA256 = %s, sha256sum says %s", s.SHA256, sum)
			}
			got := run(t, nil, "age", "-d", "-i", key, dst)
			switch kind {
			case compress.Zstd:
				got = run(t, got, "zstd", "-d", "-c")
			case compress.Gzip:
				got = run(t, got, "gzip", "-d", "-c")
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("age -d gave %d bytes that differ from the %d sealed", len(got), len(want))
			}
			// No stanza beyond the recipient's: the header is what
			// `age -e -r` writes (one X25519 stanza).
			hdr, _ := os.ReadFile(dst)
			if n := bytes.Count(hdr[:bytes.Index(hdr, []byte("\n---"))], []byte("\n-> ")); n != 1 {
				t.Errorf("header has %d stanzas, want 1", n)
			}
		})
	}
}

func TestDecryptToOpensAgeCLIFiles(t *testing.T) {
	need(t, "age", "age-keygen", "zstd", "gzip")
	for _, kind := range []compress.Kind{compress.None, compress.Zstd, compress.Gzip} {
		t.Run(string(kind), func(t *testing.T) {
			dir := t.TempDir()
			key, pub := keygen(t, dir, "key.txt")
			_, want := sample(t, dir, 1<<20+3)
			in := want
			switch kind {
			case compress.Zstd:
				in = run(t, want, "zstd", "-c", "-q")
			case compress.Gzip:
				in = run(t, want, "gzip", "-c")
			}
			f := filepath.Join(dir, "cli.age")
			if err := os.WriteFile(f, run(t, in, "age", "-e", "-r", pub), 0o600); err != nil {
				t.Fatal(err)
			}
			tmp, inner, err := DecryptTo(context.Background(), f, dir, identities(t, key))
			if err != nil {
				t.Fatal(err)
			}
			if inner != kind {
				t.Errorf("inner compression %q, want %q", inner, kind)
			}
			got, _ := os.ReadFile(tmp)
			if !bytes.Equal(got, want) {
				t.Fatal("decrypted bytes differ")
			}
			if fi, _ := os.Stat(tmp); fi.Mode().Perm() != 0o600 {
				t.Errorf("temp file mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

// TestDamage: every damaged file is a *CorruptError (a verdict), a
// wrong key a *WrongIdentityError, and nothing is left behind.
func TestDamage(t *testing.T) {
	need(t, "age", "age-keygen")
	dir := t.TempDir()
	key, pub := keygen(t, dir, "key.txt")
	other, _ := keygen(t, dir, "other.txt")
	src, _ := sample(t, dir, 200_000)
	good, _ := seal(t, src, dir, compress.Zstd, recipients(t, pub))
	orig, _ := os.ReadFile(good)
	hdrEnd := bytes.Index(orig, []byte("\n---")) + 1
	flip := func(at int) []byte {
		b := bytes.Clone(orig)
		b[at] ^= 0x01
		return b
	}
	cases := []struct {
		name  string
		data  []byte
		ids   string
		wrong bool
	}{
		{"wrong key", orig, other, true},
		{"flipped payload byte", flip(len(orig) / 2), key, false},
		{"flipped last byte", flip(len(orig) - 1), key, false},
		{"flipped header MAC", flip(hdrEnd + 6), key, false},
		{"flipped nonce", flip(bytes.IndexByte(orig[hdrEnd:], '\n') + hdrEnd + 3), key, false},
		{"truncated mid-payload", orig[:len(orig)/2], key, false},
		{"truncated by one byte", orig[:len(orig)-1], key, false},
		{"truncated in header", orig[:hdrEnd-5], key, false},
		{"trailing garbage", append(bytes.Clone(orig), 0), key, false},
		{"empty", nil, key, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			f := filepath.Join(d, "x.db.zst.age")
			os.WriteFile(f, c.data, 0o600)
			tmp, _, err := DecryptTo(context.Background(), f, d, identities(t, c.ids))
			var ce *CorruptError
			var we *WrongIdentityError
			switch {
			case err == nil:
				os.Remove(tmp)
				t.Fatal("damaged file decrypted without error")
			case c.wrong && !errors.As(err, &we):
				t.Fatalf("want a WrongIdentityError, got %T: %v", err, err)
			case !c.wrong && !errors.As(err, &ce):
				t.Fatalf("want a CorruptError, got %T: %v", err, err)
			}
			if ents, _ := os.ReadDir(d); len(ents) != 1 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
	// The age CLI agrees: none of the damaged files decrypt.
	for _, c := range cases[1:] {
		f := filepath.Join(dir, "cli-check.age")
		os.WriteFile(f, c.data, 0o600)
		if err := exec.Command("age", "-d", "-i", key, "-o", os.DevNull, f).Run(); err == nil {
			t.Errorf("%s: age -d accepted it", c.name)
		}
	}
	if err := CheckHeader(good); err != nil {
		t.Errorf("CheckHeader(good): %v", err)
	}
	bad := filepath.Join(dir, "bad.age")
	os.WriteFile(bad, orig[:hdrEnd-5], 0o600)
	var ce *CorruptError
	if err := CheckHeader(bad); !errors.As(err, &ce) {
		t.Errorf("CheckHeader(truncated header) = %v, want a CorruptError", err)
	}
}

func TestSeveralAndSSHRecipients(t *testing.T) {
	need(t, "age", "age-keygen", "ssh-keygen")
	dir := t.TempDir()
	k1, p1 := keygen(t, dir, "k1.txt")
	k2, p2 := keygen(t, dir, "k2.txt")
	ssh := filepath.Join(dir, "id_ed25519")
	run(t, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ssh)
	sshPub, _ := os.ReadFile(ssh + ".pub")
	rsa := filepath.Join(dir, "id_rsa")
	run(t, nil, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa)
	rf := filepath.Join(dir, "recipients.txt")
	os.WriteFile(rf, []byte("# backup keys\n\n"+p2+"\n  \n# the ops laptop\n"+string(sshPub)), 0o600)
	rsaPub, _ := os.ReadFile(rsa + ".pub")
	rs, err := ParseRecipients([]string{p1, strings.TrimSpace(string(rsaPub))}, []string{rf})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d recipients, want 4", len(rs))
	}
	src, want := sample(t, dir, 100_000)
	dst, _ := seal(t, src, dir, compress.None, rs)
	for _, k := range []string{k1, k2, ssh, rsa} {
		if got := run(t, nil, "age", "-d", "-i", k, dst); !bytes.Equal(got, want) {
			t.Errorf("age -d -i %s: wrong plaintext", filepath.Base(k))
		}
		tmp, _, err := DecryptTo(context.Background(), dst, dir, identities(t, k))
		if err != nil {
			t.Fatalf("DecryptTo with %s: %v", filepath.Base(k), err)
		}
		if got, _ := os.ReadFile(tmp); !bytes.Equal(got, want) {
			t.Errorf("DecryptTo with %s: wrong plaintext", filepath.Base(k))
		}
		os.Remove(tmp)
	}
}

func TestParseErrors(t *testing.T) {
	need(t, "age-keygen")
	dir := t.TempDir()
	key, pub := keygen(t, dir, "key.txt")
	secret, _ := os.ReadFile(key)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	secretLine := ""
	for _, l := range strings.Split(string(secret), "\n") {
		if strings.HasPrefix(l, "AGE-SECRET-KEY-") {
			secretLine = l
		}
	}
	// The last character changed to another one (a "q" for a "q" would
	// change nothing): the bech32 checksum no longer holds.
	other := "q"
	if strings.HasSuffix(pub, "q") {
		other = "p"
	}
	rcases := []struct {
		name        string
		keys, files []string
		want        string
	}{
		{"garbage", []string{"hello"}, nil, "not an age"},
		{"bad checksum", []string{pub[:len(pub)-1] + other}, nil, "--recipient"},
		{"private key as recipient", []string{secretLine}, nil, "private key"},
		{"private key after a space", []string{" " + secretLine}, nil, "private key"},
		{"private key in lower case", []string{strings.ToLower(secretLine)}, nil, "private key"},
		{"private key with a typo", []string{strings.Replace(secretLine, "SECRET", "SECRT", 1)}, nil, "--recipient"},
		{"SSH private key as recipient", []string{sshPrivate(t)}, nil, "private key"},
		{"plugin", []string{"age1yubikey1qwerty"}, nil, "plugin"},
		{"empty file", nil, []string{write("empty.txt", "# nothing\n\n")}, "no recipients"},
		{"identity file as recipients", nil, []string{key}, "line 3 is a private key"},
		{"missing file", nil, []string{filepath.Join(dir, "nope")}, "no such file"},
		{"bad line", nil, []string{write("bad.txt", pub+"\nage1bogus\n")}, "line 2: malformed"},
	}
	for _, c := range rcases {
		_, err := ParseRecipients(c.keys, c.files)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRecipients %s: %v, want an error with %q", c.name, err, c.want)
		}
		// Not even part of a key: any 8 letters and digits past the
		// first 16 characters.
		for _, k := range c.keys {
			k = strings.TrimSpace(k)
			for i := 16; i+8 <= len(k); i += 4 {
				w := k[i : i+8]
				if strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
					continue
				}
				if err != nil && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("ParseRecipients %s: the error quotes the key (%q): %v", c.name, w, err)
					break
				}
			}
		}
	}
	icases := []struct {
		name, file, want string
	}{
		{"public key", write("pub.txt", pub+"\n"), "public key"},
		{"garbage", write("junk.txt", "hello\n"), "unknown identity type"},
		{"bad pem", write("bad.pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n"), "malformed SSH"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	}
	for _, c := range icases {
		_, err := ParseIdentities([]string{c.file}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseIdentities %s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// TestEncryptedIdentity: an identity file encrypted with a passphrase
// (the format of `age -p`, which needs a terminal to run, so the file is
// made with the library here; the CLI test drives the prompt) asks for
// the passphrase, refuses a wrong one, and needs a terminal.
func TestEncryptedIdentity(t *testing.T) {
	need(t, "age", "age-keygen")
	dir := t.TempDir()
	key, pub := keygen(t, dir, "key.txt")
	plain, _ := os.ReadFile(key)
	sr, err := age.NewScryptRecipient("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	sr.SetWorkFactor(10)
	enc, err := SealBytes(plain, []age.Recipient{sr})
	if err != nil {
		t.Fatal(err)
	}
	encKey := filepath.Join(dir, "key.age")
	os.WriteFile(encKey, enc, 0o600)
	// The age CLI reads it as an encrypted identity too... given a
	// terminal; here it is enough that it is an age file.
	src, want := sample(t, dir, 50_000)
	dst, _ := seal(t, src, dir, compress.None, recipients(t, pub))

	asked := 0
	ask := func(pass string) Passphrase {
		return func(name string) ([]byte, error) {
			asked++
			if name != encKey {
				t.Errorf("asked for %q, want %q", name, encKey)
			}
			return []byte(pass), nil
		}
	}
	ids, err := ParseIdentities([]string{encKey}, ask("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	tmp, _, err := DecryptTo(context.Background(), dst, dir, ids)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(tmp); !bytes.Equal(got, want) {
		t.Error("wrong plaintext")
	}
	if _, err := ParseIdentities([]string{encKey}, ask("wrong")); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := ParseIdentities([]string{encKey}, nil); !errors.Is(err, ErrNoTerminal) {
		t.Errorf("no terminal: %v, want ErrNoTerminal", err)
	}
	if asked != 2 {
		t.Errorf("asked %d times, want 2", asked)
	}
}

func TestSealBytesRoundTrip(t *testing.T) {
	need(t, "age", "age-keygen")
	dir := t.TempDir()
	key, pub := keygen(t, dir, "key.txt")
	other, _ := keygen(t, dir, "other.txt")
	b, err := SealBytes([]byte(`{"tables":[{"name":"users"}]}`), recipients(t, pub))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("users")) {
		t.Fatal("plaintext in the sealed bytes")
	}
	if got := run(t, b, "age", "-d", "-i", key); string(got) != `{"tables":[{"name":"users"}]}` {
		t.Errorf("age -d: %q", got)
	}
	var we *WrongIdentityError
	if _, err := OpenBytes("m", b, identities(t, other)); !errors.As(err, &we) {
		t.Errorf("wrong key: %v", err)
	}
	b[len(b)-1] ^= 1
	var ce *CorruptError
	if _, err := OpenBytes("m", b, identities(t, key)); !errors.As(err, &ce) {
		t.Errorf("flipped: %v", err)
	}
}

// TestProofCatches: the proof Seal runs (decrypt with the captured file
// key, compare with the database) fails on a file damaged after it was
// written, on a wrong key, and on a file that decrypts soundly to other
// bytes than the database's: changed, shorter or longer.
func TestProofCatches(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	keys := &fileKey{}
	f := filepath.Join(dir, "x.age")
	out, _ := os.Create(f)
	w, err := age.Encrypt(out, capture{id.Recipient(), keys})
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("database page "), 50_000)
	w.Write(plain)
	w.Close()
	out.Close()
	ctx := context.Background()
	b, _ := os.ReadFile(f)
	try := func(file []byte, key []byte, db []byte) proof {
		return prove(ctx, f, bytes.NewReader(file), key, compress.None, "db", bytes.NewReader(db))
	}
	if p := try(b, keys.key, plain); p.err != nil || p.size != int64(len(plain)) || p.fileSize != int64(len(b)) {
		t.Fatalf("intact file: %+v", p)
	}
	wrong := bytes.Clone(keys.key)
	wrong[0] ^= 1
	if p := try(b, wrong, plain); p.err == nil {
		t.Error("a wrong file key passed the proof")
	}
	for _, at := range []int{40, len(b) / 2, len(b) - 1} {
		d := bytes.Clone(b)
		d[at] ^= 0x80
		var ce *CorruptError
		if p := try(d, keys.key, plain); !errors.As(p.err, &ce) {
			t.Errorf("byte %d flipped: %v, want a CorruptError", at, p.err)
		}
	}
	if p := try(b[:len(b)-10], keys.key, plain); p.err == nil {
		t.Error("a truncated file passed the proof")
	}
	other := bytes.Clone(plain)
	other[len(other)/3] ^= 1
	for name, db := range map[string][]byte{
		"one byte changed":       other,
		"database longer":        append(bytes.Clone(plain), 0),
		"database shorter":       plain[:len(plain)-1],
		"database empty":         nil,
		"database a page longer": append(bytes.Clone(plain), plain[:4096]...),
	} {
		var d *differsError
		if p := try(b, keys.key, db); !errors.As(p.err, &d) {
			t.Errorf("%s: %v, want a differsError", name, p.err)
		} else if !strings.Contains(p.err.Error(), "decrypts to different bytes") {
			t.Errorf("%s: %v", name, p.err)
		}
	}
}

// TestProofReadsTheFile: the proof reads the age file back through its
// own descriptor, so bytes changed in the file after the writer handed
// them over are what it sees (and then fails on), not the writer's.
func TestProofReadsTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	out, _ := os.Create(p)
	defer out.Close()
	back, _ := os.Open(p)
	defer back.Close()
	fw := newFollow(out)
	r := fw.reader(back)
	got := make(chan []byte)
	go func() {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	fw.Write([]byte("written by the writer"))
	out.WriteAt([]byte("W"), 0) // the file changed behind the writer's back
	fw.Write([]byte(", and more"))
	fw.finish(nil)
	if b := <-got; string(b) != "Written by the writer, and more" {
		t.Errorf("read back %q", b)
	}

	// A writer that fails ends the reader with errWriterFailed, not EOF:
	// a half-written file is never taken as the whole.
	fw2 := newFollow(out)
	r2 := fw2.reader(back)
	fw2.Write([]byte("x"))
	go fw2.finish(errors.New("disk full"))
	if _, err := io.ReadAll(r2); !errors.Is(err, errWriterFailed) {
		t.Errorf("after a failed writer: %v", err)
	}
}

// sshPrivate is a fresh OpenSSH private key in its PEM armour.
func sshPrivate(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(blk))
}
