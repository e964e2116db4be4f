package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/host/passwd"
	"sqlite-backup/internal/output/hint"
)

// The "may not write the backup dir" hint offers a directory in the
// user's home only when that home exists and is writable: a service
// account's /nonexistent would fail again.
func TestBackupDirHintHome(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "my home")
	os.Mkdir(home, 0o700)
	saved := passwd.File
	t.Cleanup(func() { passwd.File = saved })
	denied := fmt.Errorf("open lock %q: %w", "/srv/bk/.sqlite-backup.lock", fs.ErrPermission)
	for _, c := range []struct {
		home string
		want string // the hint's ending
	}{
		{home, " (or choose one it may write: sqlite-backup --source /srv/app.db --backup-dir '" + home + "/backups')"},
		{"/nonexistent", " /srv/bk"},
		{"", " /srv/bk"},
	} {
		passwd.File = filepath.Join(dir, "passwd")
		line := fmt.Sprintf("me:x:%d:%d::%s:/bin/sh\n", os.Geteuid(), os.Getegid(), c.home)
		if err := os.WriteFile(passwd.File, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		h := hint.Of(backupHint(denied, "/srv/app.db", "/srv/bk", ""))
		if !strings.HasPrefix(h, "user me may not write /srv/bk: sudo install -d -m 700 -o me /srv/bk") || !strings.HasSuffix(h, c.want) {
			t.Errorf("home %q: hint %q, want it to end %q", c.home, h, c.want)
		}
		if strings.Contains(h, "~") {
			t.Errorf("home %q: hint %q names ~", c.home, h)
		}
	}
}
