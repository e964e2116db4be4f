package sftp_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
)

// runHint runs the command a hint gives after marker with sh -c in dir,
// as an operator who pastes it would, and fails if it created a file
// named pwned anywhere under dir (a path in it ran as a command).
func runHint(t *testing.T, h, marker, dir string, env ...string) {
	t.Helper()
	i := strings.Index(h, marker)
	if i < 0 {
		t.Fatalf("hint %q has no %q", h, marker)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", h[i+len(marker):])
	cmd.WaitDelay = time.Second
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the hint's command %q: %v\n%s", h[i+len(marker):], err, out)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "pwned") {
			t.Fatalf("the hint ran part of a path as a command: %s exists", p)
		}
		return nil
	})
}

// TestHostKeyHintsRun: the unknown and changed host key errors name the
// server's fingerprint as ssh-keygen -lf prints it, and their hints,
// pasted into sh, work with a known_hosts file whose directory does not
// exist yet and whose path holds $(…), backquotes and quotes, without
// running any of it; afterwards the server is accepted.
func TestHostKeyHintsRun(t *testing.T) {
	s := testserver.StartSSHD(t)
	other := testserver.StartSSHD(t)
	other.Kill()
	work := t.TempDir()
	kh := filepath.Join(work, "x$(touch pwned)", "a'b`touch pwned2`;touch pwned3", ".ssh", "known_hosts")
	out, err := exec.Command(testserver.Need(t, "ssh-keygen"), "-lf", filepath.Join(s.Root, "host_ed25519.pub")).Output()
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Fields(string(out))[1] // 256 SHA256:… comment (ED25519)

	why, err := tool(t, s, kh)
	if why != "unknown" || !strings.Contains(err.Error(), fp) || !strings.Contains(hint.Of(err), fp) {
		t.Fatalf("want unknown with %s in error and hint: %v\nhint: %s", fp, err, hint.Of(err))
	}
	runHint(t, hint.Of(err), "add it: ", work)
	if why, err := tool(t, s, kh); why != "" {
		t.Fatalf("after the hint: %v", err)
	}

	if err := os.WriteFile(kh, []byte(strings.Replace(s.KnownHostsLine(), strings.Fields(s.HostPub)[1], strings.Fields(other.HostPub)[1], 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	why, err = tool(t, s, kh)
	if why != "changed" || !strings.Contains(err.Error(), fp) || !strings.Contains(hint.Of(err), fp) {
		t.Fatalf("want changed with %s: %v\nhint: %s", fp, err, hint.Of(err))
	}
	runHint(t, hint.Of(err), "replace the old key: ", work)
	if why, err := tool(t, s, kh); why != "" {
		t.Fatalf("after the hint: %v", err)
	}
}

// TestMissingDirHintRuns: the mkdir hint for a missing remote directory
// quotes the path for the local shell and again for the server's, so
// pasted it creates exactly the directory named, running nothing of it.
func TestMissingDirHintRuns(t *testing.T) {
	ctx := context.Background()
	s := testserver.StartSSHD(t)
	// Where a command in the path would leave its mark, on either side.
	mark := filepath.Join(t.TempDir(), "pwned")
	dir := filepath.Join(s.Dir, "x$(touch "+mark+")", "a'b`touch "+mark+"2`;touch "+mark+"3")
	u := url.URL{Scheme: "sftp", User: url.User(s.User), Host: "127.0.0.1:" + itoa(s.Port), Path: dir}
	r, err := remote.Open(ctx, u.String(), remote.Options{SSHKey: s.Key, KnownHosts: s.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Put(ctx, "x", remote.Source{R: bytes.NewReader([]byte("x")), Size: 1, SHA256: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"})
	var re *remote.Error
	if !errors.As(err, &re) || re.Kind != remote.KindNoDir {
		t.Fatalf("missing dir: %v", err)
	}
	// The operator's ssh, with this server's key and known_hosts.
	bin := t.TempDir()
	shim := "#!/bin/sh\nexec '" + testserver.Need(t, "ssh") + "' -F /dev/null -i '" + s.Key + "' -o UserKnownHostsFile='" + s.KnownHosts + "' -o BatchMode=yes -o IdentitiesOnly=yes \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	runHint(t, hint.Of(err), "on the server: ", work, "PATH="+bin+":"+os.Getenv("PATH"))
	for _, m := range []string{mark, mark + "2", mark + "3"} {
		if _, err := os.Stat(m); err == nil {
			t.Fatalf("the hint ran part of the path as a command: %s exists", m)
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("the hint did not create %q: %v", dir, err)
	}
	if err := r.Put(ctx, "x", remote.Source{R: bytes.NewReader([]byte("x")), Size: 1, SHA256: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}); err != nil {
		t.Fatalf("after the hint: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
