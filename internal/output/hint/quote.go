package hint

import "strings"

// Quote quotes s for a hint's command line only where a shell needs it,
// so that a path with spaces or quotes can be pasted as it is shown.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
