package redact

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// Every form a private key takes on its way into a message is masked:
// raw, quoted by %q or JSON (\n escapes), cut short, lowercased, with
// spaces around it; and nothing else is touched.
func TestSecrets(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	sk := id.String()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(blk))
	body := strings.Split(pemKey, "\n")[1] // b3BlbnNzaC1rZXktdjE…
	jsonKey, _ := json.Marshal(pemKey)

	secretParts := []string{sk[15:40], strings.ToLower(sk[15:40]), body[20:50], "PRIVATE KEY"}
	for _, in := range []string{
		sk,
		" " + sk + " ",
		strings.ToLower(sk),
		fmt.Sprintf("--recipient %q: bad", " "+sk),
		sk[:30], // cut short
		pemKey,
		fmt.Sprintf("expected string value but got %q (long flag); perhaps try --recipient=%q?", pemKey, pemKey),
		string(jsonKey),
		pemKey[:len(pemKey)/2],
		body,
		"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0011\n\nMIIEow\n-----END RSA PRIVATE KEY-----",
		"PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\nAAAAIQ",
	} {
		out := Secrets(in)
		for _, p := range secretParts {
			if strings.Contains(out, p) {
				t.Errorf("Secrets(%q) = %q: still holds %q", in, out, p)
			}
		}
		if !strings.Contains(out, Mask) {
			t.Errorf("Secrets(%q) = %q: nothing masked", in, out)
		}
		if !HasSecret(in) {
			t.Errorf("HasSecret(%q) = false", in)
		}
	}
	if got := Secrets(`{"error":"x ` + string(jsonKey[1:len(jsonKey)-1]) + ` y","hint":"h"}`); !json.Valid([]byte(got)) {
		t.Errorf("masking broke the JSON around it: %s", got)
	}
	if got, want := Secrets("s3 endpoint https://AKIA:s3cr3t@s3.example.com/x"), "s3 endpoint https://AKIA:xxxxx@s3.example.com/x"; got != want {
		t.Errorf("URL password: got %q, want %q", got, want)
	}
	for _, keep := range []string{
		"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
		"/backup/app.db.20260101_120000.zst.age: ok (sha256 ok)",
		"sftp://backup@host/srv/backups",
		"page-ages and AGE columns",
		"--recipient: that is a private key (AGE-SECRET-KEY-…), not a recipient",
	} {
		if got := Secrets(keep); got != keep {
			t.Errorf("Secrets(%q) = %q, want it unchanged", keep, got)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"app.db.20260101_120000":  "app.db.20260101_120000",
		"my app.db":               "my app.db",
		"ünïcode.db":              "ünïcode.db",
		"x\x1b]0;pwned\x07.db":    `x\u001b]0;pwned\u0007.db`,
		"del\x7f":                 `del\u007f`,
		"tag\U000E0001":           `tag\udb40\udc01`,
		"tab\there":               `tab\there`,
		"a\nb: ok":                `a\nb: ok`,
		"a\rb":                    `a\rb`,
		"bad\xffutf8":             `bad\xffutf8`,
		"rtl\u202eexe.db":         `rtl\u202eexe.db`,
		"c1\u009b31m":             `c1\u009b31m`,
		"real \uFFFD replacement": "real \uFFFD replacement",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := Text("line1\n\tx\x1b[2J"), "line1\n\tx\\u001b[2J"; got != want {
		t.Errorf("Text: got %q, want %q", got, want)
	}
	// --json passes Text too: it must stay valid JSON and mean the same.
	for _, name := range []string{"del\x7f", "c1\u009b", "rtl\u202e", "tag\U000E0001", "esc\x1b", "bad\xff", "nl\n"} {
		js, _ := json.Marshal(map[string]string{"name": name})
		out := Text(string(js))
		var back map[string]string
		if err := json.Unmarshal([]byte(out), &back); err != nil {
			t.Errorf("Text(%s) = %s: not JSON: %v", js, out, err)
		} else if want := strings.ToValidUTF8(name, "\uFFFD"); back["name"] != want {
			t.Errorf("Text(%s) = %s decodes to %q, want %q", js, out, back["name"], want)
		}
	}
}
