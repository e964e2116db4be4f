package hint

import "strings"

// Quote makes s one word for a POSIX shell, so that a path or URL pasted
// from a hint runs nothing: left alone when it holds only characters no
// shell treats specially, else in single quotes.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
