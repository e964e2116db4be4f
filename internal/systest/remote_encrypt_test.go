package systest

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"sqlite-backup/backup"
	"sqlite-backup/internal/testdb"
)

// TestRemoteEncrypted: with -r only ciphertext leaves the machine. Three
// backups (one compressed) go to a real sshd and a real versitygw with
// --keep 2; on each server every byte is read back to prove that no
// SQLite header, table name or row value is there in the clear, and the
// sidecars are checked by sha256sum. list --remote shows the .age
// backups; verify URL/NAME passes with -i and gives no verdict (exit 1)
// without it; restore URL/NAME -i gives the database back, as the C
// sqlite3 CLI reads it.
func TestRemoteEncrypted(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 2000, BlobSize: 300})
	const table, marker = "secret_customers", "PLAINTEXT-MARKER-4711"
	if out, err := exec.Command("sqlite3", src, "CREATE TABLE "+table+"(name TEXT); INSERT INTO "+table+" VALUES ('"+marker+"');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o755)
	// -i lets the shrink guard read the previous backup's sealed counts;
	// without it the guard uses the backup dir's private state, and
	// without both pruning waits (checked at the end).
	args := append([]string{"--source", src, "--backup-dir", bdir, "-r", id.Recipient().String(), "-i", key, "--remote", e.sshd.URL(), "--remote", e.s3URL, "--keep", "2", "--json"}, e.flags...)
	var newest string
	for i := range 3 {
		a := args
		if i == 1 {
			a = append(append([]string{}, args...), "--compress", "zstd")
		}
		b := parseBackup(t, e.run(t, nil, a...).must(t).out)
		newest = filepath.Base(b.Path)
		if !strings.HasSuffix(newest, ".age") {
			t.Fatalf("run %d: backup %s is not encrypted", i, b.Path)
		}
		if len(b.Remotes) != 2 {
			t.Fatalf("run %d: remotes %+v", i, b.Remotes)
		}
		for _, r := range b.Remotes {
			if r.Error != "" || len(r.Uploaded) != 1 || r.Uploaded[0] != newest {
				t.Fatalf("run %d: remote %+v", i, r)
			}
		}
	}
	local := sha256sumCheck(t, bdir)
	if len(local) != 2 {
		t.Fatalf("local backups after --keep 2: %v", local)
	}

	// The servers' side: the same two backups, all .age, nothing in the clear.
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		if names := sha256sumCheck(t, d); strings.Join(names, " ") != strings.Join(local, " ") {
			t.Fatalf("%s holds %v after --keep 2, local %v", d, names, local)
		}
		ents, _ := os.ReadDir(d)
		if len(ents) != 6 {
			t.Fatalf("%s: %d files, want 2 backups with 2 sidecars each", d, len(ents))
		}
		for _, en := range ents {
			n := en.Name()
			if !strings.HasSuffix(strings.TrimSuffix(strings.TrimSuffix(n, ".sha256"), ".json"), ".age") {
				t.Fatalf("%s: %s is not an encrypted backup or its sidecar", d, n)
			}
			if strings.HasSuffix(n, ".json") {
				var m struct {
					Encryption string          `json:"encryption"`
					Sealed     string          `json:"sealed"`
					Content    json.RawMessage `json:"content"`
				}
				data, _ := os.ReadFile(filepath.Join(d, n))
				if err := json.Unmarshal(data, &m); err != nil || m.Encryption != "age" || m.Sealed == "" || m.Content != nil {
					t.Fatalf("%s/%s: manifest not sealed (%v):\n%s", d, n, err, data)
				}
			}
		}
	}
	// Every file either server keeps, whatever its place (multipart
	// parts and metadata included), is free of plaintext.
	noPlaintext := func() {
		t.Helper()
		for _, root := range []string{e.sshd.Dir, e.s3.Dir} {
			seen := 0
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				seen++
				for _, plain := range []string{"SQLite format 3", table, marker, backup.GuardStateName} {
					if strings.Contains(string(data), plain) || strings.Contains(p, plain) {
						t.Fatalf("%s holds %q in the clear", p, plain)
					}
				}
				return nil
			})
			if seen < 6 {
				t.Fatalf("%s: read %d files, want at least 6", root, seen)
			}
		}
	}
	noPlaintext()

	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		obj := url + "/" + newest
		l := e.run(t, nil, append([]string{"list", "--remote", url}, e.flags...)...).must(t)
		for _, n := range local {
			if !strings.Contains(l.out, n) {
				t.Fatalf("list --remote %s lacks %s:\n%s", url, n, l.out)
			}
		}
		if !strings.Contains(l.out, " age") || strings.Contains(l.out, "INCOMPLETE") {
			t.Fatalf("list --remote %s:\n%s", url, l.out)
		}
		var entry struct {
			Remote     string `json:"remote"`
			Name       string `json:"name"`
			Encryption string `json:"encryption"`
			Complete   bool   `json:"complete"`
		}
		lj := e.run(t, nil, append([]string{"list", "--remote", url, "--json", "--source", src}, e.flags...)...).must(t)
		var rep struct {
			Results []json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal([]byte(lj.out), &rep); err != nil || len(rep.Results) != 2 {
			t.Fatalf("list --remote --json: %v\n%s", err, lj.out)
		}
		json.Unmarshal(rep.Results[0], &entry)
		if entry.Remote != url || entry.Name != newest || entry.Encryption != "age" || !entry.Complete {
			t.Fatalf("list --remote --json: %+v", entry)
		}

		v := e.run(t, nil, append([]string{"verify", obj, "-i", key}, e.flags...)...).must(t)
		if !strings.Contains(v.out, obj+": ok") || !strings.Contains(v.out, "decrypted with age") {
			t.Fatalf("verify -i %s:\n%s", obj, v.out)
		}
		nv := e.run(t, nil, append([]string{"verify", obj}, e.flags...)...)
		if nv.code != 1 || !strings.Contains(nv.out, "content NOT CHECKED") {
			t.Fatalf("verify %s without -i: exit %d\n%s%s", obj, nv.code, nv.out, nv.err)
		}

		toDir := t.TempDir()
		to := filepath.Join(toDir, "restored.db")
		nr := e.run(t, nil, append([]string{"restore", obj, "--to", to}, e.flags...)...)
		if nr.code != 2 || !strings.Contains(nr.err, "-i KEY") {
			t.Fatalf("restore %s without -i: exit %d\n%s", obj, nr.code, nr.err)
		}
		if ents, _ := os.ReadDir(toDir); len(ents) != 0 {
			t.Fatalf("restore without -i left %v", ents)
		}
		e.run(t, nil, append([]string{"restore", obj, "-i", key, "--to", to}, e.flags...)...).must(t)
		out, err := exec.Command("sqlite3", to, "PRAGMA integrity_check; SELECT count(*) FROM t; SELECT name FROM "+table+";").CombinedOutput()
		if err != nil || string(out) != "ok\n2000\n"+marker+"\n" {
			t.Fatalf("restored from %s: %v %q", obj, err, out)
		}
	}

	// Without -i the guard compares with the counts the backup dir's
	// private state recorded (table names included, so the walk above
	// would see it on a server): the run prunes here and on both
	// remotes, and the state goes to neither.
	state := filepath.Join(bdir, backup.GuardStateName)
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("guard state: %v, want a 0600 file", err)
	}
	if data, _ := os.ReadFile(state); !strings.Contains(string(data), table) {
		t.Fatalf("guard state lacks the counts of %s:\n%s", table, data)
	}
	keyless := append([]string{"--source", src, "--backup-dir", bdir, "-r", id.Recipient().String(), "--remote", e.sshd.URL(), "--remote", e.s3URL, "--keep", "2", "--json"}, e.flags...)
	pruned := parseBackup(t, e.run(t, nil, keyless...).must(t).out)
	for _, r := range pruned.Remotes {
		if r.Error != "" || len(r.Uploaded) != 1 || len(r.Removed) != 3 || !strings.HasSuffix(r.Removed[0], ".age") {
			t.Fatalf("guard from the state: remote %+v, want one upload and one backup removed with its sidecars", r)
		}
	}
	for _, d := range []string{bdir, e.sshd.Dir, e.s3Dir} {
		if n := sha256sumCheck(t, d); len(n) != 2 {
			t.Fatalf("guard from the state: %s holds %v, want 2 backups after --keep 2", d, n)
		}
	}
	noPlaintext()

	// Without the state the guard cannot compare with the sealed counts:
	// the backup goes to both remotes, but nothing is pruned anywhere.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	blind := parseBackup(t, e.run(t, nil, keyless...).must(t).out)
	for _, r := range blind.Remotes {
		if r.Error != "" || len(r.Uploaded) != 1 || len(r.Removed) != 0 {
			t.Fatalf("blind guard: remote %+v", r)
		}
	}
	for _, d := range []string{bdir, e.sshd.Dir, e.s3Dir} {
		if n := sha256sumCheck(t, d); len(n) != 3 {
			t.Fatalf("blind guard: %s holds %v, want all 3 backups kept", d, n)
		}
	}
	noPlaintext()

	// A damaged ciphertext on the server fails verify -i, never passes.
	p := filepath.Join(e.s3Dir, newest)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff
	os.WriteFile(p, data, 0o644)
	if v := e.run(t, nil, append([]string{"verify", e.s3URL + "/" + newest, "-i", key}, e.flags...)...); v.code == 0 {
		t.Fatalf("verify -i of a damaged remote copy passed:\n%s", v.out)
	}
}
