// Package redact keeps key material and credentials out of everything
// the tool prints. A private key given by mistake where a public one or
// a path belongs (a flag, an environment variable, the config file) may
// reach a message through many doors: our errors, kong's parse errors
// and did-you-mean, --json, config's table. Secrets scrubs a finished
// text at the door instead of trusting each of them, and Printable makes
// a name from a remote listing or a directory safe to put on a terminal.
package redact

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf16"
)

// Mask replaces every secret Secrets finds.
const Mask = "[REDACTED]"

var (
	// age identities: AGE-SECRET-KEY-1…, the post-quantum
	// AGE-SECRET-KEY-PQ-1… and plugin identities AGE-PLUGIN-NAME-1…, in
	// either case (Bech32 takes both). The name alone, as our messages
	// write it (AGE-SECRET-KEY-…), is no secret.
	ageIdentity = regexp.MustCompile(`(?i)AGE-(?:SECRET-KEY|PLUGIN)-[A-Z0-9-]*[0-9][A-Z0-9]*`)
	// A PEM private key (OpenSSH, PKCS#1, PKCS#8, encrypted ones with
	// their Proc-Type and DEK-Info lines), raw or as a Go or JSON quoted
	// string (\n escapes), whole or cut short.
	pemBlock = regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)-----END[A-Z0-9 ]*PRIVATE KEY-----`)
	pemStart = regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[A-Za-z0-9+/=:,. \t\r\n-]|\\[nrt])*`)
	// The body of an OpenSSH private key without its armour starts with
	// base64("openssh-key-v1\0").
	opensshBody = regexp.MustCompile(`b3BlbnNzaC1rZXktdjE(?:[A-Za-z0-9+/=\r\n]|\\[nr])*`)
	// PuTTY's private key file.
	puttyKey = regexp.MustCompile(`(?i)PuTTY-User-Key-File-[0-9]+:(?s:.*)`)
	// A password in a URL: scheme://user:PASSWORD@host.
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@"'<>]*):[^@/\s"'<>]*@`)
)

// Secrets returns s with every private key and URL password in it
// replaced by Mask (a URL password by xxxxx, as remote.Redact does).
func Secrets(s string) string {
	if !maybeSecret(s) {
		return s
	}
	s = pemBlock.ReplaceAllString(s, Mask)
	s = pemStart.ReplaceAllString(s, Mask)
	s = opensshBody.ReplaceAllString(s, Mask)
	s = puttyKey.ReplaceAllString(s, Mask)
	s = ageIdentity.ReplaceAllString(s, Mask)
	s = urlPassword.ReplaceAllString(s, "${1}:xxxxx@")
	return s
}

// HasSecret says whether s holds something Secrets would mask: a value
// that must never be echoed back, even in part.
func HasSecret(s string) bool { return Secrets(s) != s }

// maybeSecret is a cheap test before the regular expressions.
func maybeSecret(s string) bool {
	u := strings.ToUpper(s)
	return strings.Contains(u, "AGE-") || strings.Contains(s, "PRIVATE KEY") ||
		strings.Contains(s, "b3BlbnNzaC1rZXktdjE") || strings.Contains(u, "PUTTY-USER-KEY") ||
		(strings.Contains(s, "://") && strings.Contains(s, "@"))
}

// Printable makes a name safe to print on a terminal: control
// characters (escape sequences, carriage returns, newlines that would
// forge a line of output) and invalid UTF-8 are shown escaped: \n, \t,
// \r, \xff for a byte that is not UTF-8 and \u001b for the rest, the
// escapes JSON uses. Printable characters, spaces included, stay.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == unicode.ReplacementChar && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unsafeRune(r):
			// \uXXXX (UTF-16, as JSON writes it): the same escape is
			// valid inside a --json string, which passes here too.
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Text is Printable for a whole message: newlines and tabs, which our
// own messages use, stay; every other control character is escaped.
func Text(s string) string {
	if isPrintableText(s) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = Printable(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}

func isPrintable(s string) bool {
	for i, r := range s {
		if unsafeRune(r) || (r == unicode.ReplacementChar && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return false
		}
	}
	return true
}

func isPrintableText(s string) bool {
	for i, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if unsafeRune(r) || (r == unicode.ReplacementChar && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return false
		}
	}
	return true
}

// unsafeRune: C0 and C1 controls, DEL, and the Unicode format
// characters that reorder text on screen (bidi overrides, "Trojan
// Source").
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && r != '\u00ad'
}
