package hint

import "strings"

// Quote makes s one word for a POSIX shell, so a hint line pasted into a
// terminal runs what it shows and nothing else: a path like
// x$(touch pwned) or one with a quote or a space in it stays a path.
// Plain words (letters, digits and _@%+=:,./-) are left as they are.
// Every path or other value a hint shows in a command goes through it.
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteGlob is Quote for a glob pattern the shell should still expand:
// the wildcards * ? [ ] stay outside the quotes, everything else is
// quoted.
func QuoteGlob(s string) string {
	var b strings.Builder
	start := 0
	for i, r := range s {
		if strings.ContainsRune("*?[]", r) {
			if i > start {
				b.WriteString(Quote(s[start:i]))
			}
			b.WriteRune(r)
			start = i + 1
		}
	}
	if start < len(s) || b.Len() == 0 {
		b.WriteString(Quote(s[start:]))
	}
	return b.String()
}

const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-"
