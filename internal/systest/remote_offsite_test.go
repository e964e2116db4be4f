package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/testdb"
)

// TestRemoteSidecarNames: databases whose file names hold spaces,
// quotes, UTF-8, a leading dash or a backslash go to both remotes run
// after run: the second run finds the first backup complete there (its
// .sha256 read as sha256sum -c reads it, not split on whitespace) and
// sends only the new one; the real sha256sum -c accepts every sidecar
// here and on each server; verify and restore of URL/NAME work.
func TestRemoteSidecarNames(t *testing.T) {
	e := newRemoteEnv(t)
	for i, db := range []string{"my app.db", `it's "quoted".db`, "überdatenbank-日本.db", "-leading-dash.db", `back\slash.db`} {
		t.Run(db, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, db)
			testdb.Create(t, src, testdb.Options{Rows: 300})
			bdir := filepath.Join(dir, "backups")
			os.Mkdir(bdir, 0o755)
			sub := "/names" + string(rune('0'+i))
			os.Mkdir(e.sshd.Dir+sub, 0o755)
			urls := []string{e.sshd.URL() + sub, e.s3URL + sub}
			args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", urls[0], "--remote", urls[1], "--json"}, e.flags...)
			first := parseBackup(t, e.run(t, nil, args...).must(t).out)
			second := parseBackup(t, e.run(t, nil, args...).must(t).out)
			for _, r := range second.Remotes {
				if r.Error != "" || len(r.Uploaded) != 1 || r.Present != 1 {
					t.Fatalf("second run: remote %+v (want the first backup found complete there)", r)
				}
			}
			if n := sha256sumCheck(t, bdir); len(n) != 2 {
				t.Fatalf("local sidecars checked: %v", n)
			}
			for _, d := range []string{e.sshd.Dir + sub, filepath.Join(e.s3Dir, sub)} {
				if n := sha256sumCheck(t, d); len(n) != 2 {
					t.Fatalf("%s: sidecars checked: %v", d, n)
				}
			}
			name := filepath.Base(first.Path)
			for _, url := range urls {
				obj := url + "/" + name
				v := e.run(t, nil, append([]string{"verify", obj}, e.flags...)...).must(t)
				if !strings.Contains(v.out, ": ok") {
					t.Fatalf("verify %s:\n%s", obj, v.out)
				}
				to := filepath.Join(t.TempDir(), "restored.db")
				e.run(t, nil, append([]string{"restore", obj, "--to", to}, e.flags...)...).must(t)
				if out, err := exec.Command("sqlite3", to, "PRAGMA integrity_check; SELECT count(*) FROM t;").CombinedOutput(); err != nil || string(out) != "ok\n300\n" {
					t.Fatalf("restored from %s: %v %q", obj, err, out)
				}
			}
		})
	}
}
