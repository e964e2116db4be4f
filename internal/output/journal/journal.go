// Package journal lets log lines carry a syslog priority when, and only
// when, they go straight to the systemd journal: a "<3>" prefix makes
// journald file the line as an error (journalctl -p err shows it, in
// red), while a terminal, a cron mail or a pipe never sees the prefix.
package journal

import (
	"fmt"
	"io"
)

// Syslog priorities used by this tool.
const (
	Err    = 3
	Notice = 5
)

// Prefix returns "<level>" if w is the stream systemd connected to the
// journal, else "". systemd.exec(5): a service's stdout/stderr stream
// is the journal when its device and inode match $JOURNAL_STREAM; the
// variable is inherited by children whose output goes elsewhere, hence
// the comparison.
func Prefix(w io.Writer, level int) string {
	if Connected(w) {
		return fmt.Sprintf("<%d>", level)
	}
	return ""
}
