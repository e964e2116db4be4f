package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/testserver"
	"sqlite-backup/remote"
	_ "sqlite-backup/remote/s3"
	_ "sqlite-backup/remote/sftp"
)

type target struct {
	name string
	url  string
	opts remote.Options
	// onDisk is where the server keeps the remote's files.
	onDisk string
}

func servers(t *testing.T) []target {
	sd := testserver.StartSSHD(t)
	// An sftp-only account cannot run sha256sum: uploads are read back.
	only := testserver.StartSSHD(t, "ForceCommand internal-sftp")
	s3 := testserver.StartS3(t)
	s3.MakeBucket(t, "backups")
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return []target{
		{"sftp", sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts}, sd.Dir},
		{"sftp-only", only.URL(), remote.Options{SSHKey: only.Key, KnownHosts: only.KnownHosts}, only.Dir},
		{"s3", "s3://backups/host1/db", remote.Options{}, filepath.Join(s3.Dir, "backups", "host1", "db")},
	}
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestPutGetListDelete runs the interface against both real servers:
// sizes around the multipart part size, a wrong SHA-256 refused with
// nothing left under the name, and the bytes on the server's disk equal.
func TestPutGetListDelete(t *testing.T) {
	ctx := context.Background()
	for _, tg := range servers(t) {
		t.Run(tg.name, func(t *testing.T) {
			r, err := remote.Open(ctx, tg.url, tg.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for _, n := range testSizes {
				data := make([]byte, n)
				rand.Read(data)
				// A space in the name: the server's hash line names it whole.
				name := "my f" + strings.Repeat("x", n%7)
				if err := r.Put(ctx, name, remote.Source{R: bytes.NewReader(data), Size: int64(n), SHA256: sum(data)}); err != nil {
					t.Fatalf("put %d bytes: %v", n, err)
				}
				if lc, ok := r.(interface{ LastCheck() string }); ok {
					want := map[string]string{"sftp": "server hash", "sftp-only": "read back"}[tg.name]
					if n < 1<<20 {
						want = "read back" // a session costs more than reading so little
					}
					if lc.LastCheck() != want {
						t.Fatalf("upload checked by %q, want %q", lc.LastCheck(), want)
					}
				}
				onDisk, err := os.ReadFile(filepath.Join(tg.onDisk, name))
				if err != nil || !bytes.Equal(onDisk, data) {
					t.Fatalf("%d bytes: server's file differs (%v)", n, err)
				}
				rc, err := r.Get(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("get %d bytes: %v, equal %v", n, err, bytes.Equal(got, data))
				}
				st, err := r.Stat(ctx, name)
				if err != nil || st.Size != int64(n) {
					t.Fatalf("stat: %+v %v", st, err)
				}
			}
			// A wrong checksum: refused, and the name stays absent.
			data := make([]byte, 20<<20)
			rand.Read(data)
			err = r.Put(ctx, "wrong", remote.Source{R: bytes.NewReader(data), Size: int64(len(data)), SHA256: strings.Repeat("0", 64)})
			var re *remote.Error
			if !errors.As(err, &re) || re.Kind != remote.KindMismatch {
				t.Fatalf("put with a wrong sha256: %v", err)
			}
			if _, err := r.Stat(ctx, "wrong"); !errors.Is(err, remote.ErrNotExist) {
				t.Fatalf("after a refused put, stat: %v", err)
			}
			objs, err := r.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range objs {
				names = append(names, o.Name)
			}
			for _, o := range objs {
				if strings.Contains(o.Name, "tmp") || o.Name == "wrong" {
					t.Fatalf("left behind: %v", names)
				}
				if err := r.Delete(ctx, o.Name); err != nil {
					t.Fatal(err)
				}
			}
			if objs, _ := r.List(ctx); len(objs) != 0 {
				t.Fatalf("after delete: %v", objs)
			}
			if _, err := r.Get(ctx, "nothing"); !errors.Is(err, remote.ErrNotExist) {
				t.Fatalf("get missing: %v", err)
			}
		})
	}
}

func kindOf(err error) string {
	var re *remote.Error
	if errors.As(err, &re) {
		return re.Kind
	}
	return ""
}

// TestHostKeyRefused: an unknown (or no known_hosts file) and a changed
// host key are refused with an ssh-keyscan hint, before any file is
// written. remote/sftp's TestHostKeysLikeOpenSSH holds every case
// against the ssh client's decisions.
func TestHostKeyRefused(t *testing.T) {
	ctx := context.Background()
	sd := testserver.StartSSHD(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)
	other := testserver.StartSSHD(t) // another key, written for this port
	changed := filepath.Join(dir, "changed_known_hosts")
	f := strings.Fields(other.HostPub)
	os.WriteFile(changed, []byte("[127.0.0.1]:"+itoa(sd.Port)+" "+f[0]+" "+f[1]+"\n"), 0o600)
	for _, c := range []struct {
		name, kh, want string
	}{
		{"unknown", empty, "unknown host key"},
		{"missing file", filepath.Join(dir, "nope"), "unknown host key"},
		{"changed", changed, "HOST KEY CHANGED"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := remote.Open(ctx, sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: c.kh})
			if err != nil {
				t.Fatal(err)
			}
			err = r.Put(ctx, "x", remote.Source{R: bytes.NewReader([]byte("x")), Size: 1, SHA256: sum([]byte("x"))})
			if kindOf(err) != remote.KindHostKey || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v", err)
			}
			if h := hint.Of(err); !strings.Contains(h, "ssh-keyscan -t ed25519 -p "+itoa(sd.Port)+" 127.0.0.1") {
				t.Fatalf("hint %q", h)
			}
			if ents, _ := os.ReadDir(sd.Dir); len(ents) != 0 {
				t.Fatalf("files written despite the host key: %v", ents)
			}
		})
	}
	// The hint's command, run, makes the key known.
	r, _ := remote.Open(ctx, sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
	if _, err := r.List(ctx); err != nil {
		t.Fatalf("with the right key: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestS3Refusals: a wrong secret and a missing bucket are named as such,
// not retried as transient.
func TestS3Refusals(t *testing.T) {
	ctx := context.Background()
	s3 := testserver.StartS3(t)
	s3.MakeBucket(t, "backups")
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	put := func(url string) error {
		r, err := remote.Open(ctx, url, remote.Options{})
		if err != nil {
			return err
		}
		return r.Put(ctx, "x", remote.Source{R: bytes.NewReader([]byte("x")), Size: 1, SHA256: sum([]byte("x"))})
	}
	if err := put("s3://nosuchbucket"); kindOf(err) != remote.KindNoBucket {
		t.Fatalf("missing bucket: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
	err := put("s3://backups")
	if kindOf(err) != remote.KindAuth {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") || strings.Contains(err.Error(), s3.Secret) {
		t.Fatalf("the secret is in the error: %v", err)
	}
	var re *remote.Error
	errors.As(err, &re)
	if re.Transient {
		t.Fatal("an auth failure is not transient")
	}
}

var testSizes = []int{0, 1, 100_000, 16 << 20, 16<<20 + 1, 40 << 20}

// TestSFTPMissingDir: a directory that does not exist is named as such,
// with the command that creates it, and not retried.
func TestSFTPMissingDir(t *testing.T) {
	ctx := context.Background()
	sd := testserver.StartSSHD(t)
	url := sd.URL() + "/nope"
	r, err := remote.Open(ctx, url, remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Put(ctx, "x", remote.Source{R: bytes.NewReader([]byte("x")), Size: 1, SHA256: sum([]byte("x"))})
	var re *remote.Error
	if !errors.As(err, &re) || re.Kind != remote.KindNoDir || re.Transient {
		t.Fatalf("missing dir: %v", err)
	}
	if h := hint.Of(err); !strings.Contains(h, "'mkdir -p -m 700 -- "+sd.Dir+"/nope'") {
		t.Fatalf("hint %q", h)
	}
}

// TestPruneKeepsShrinkFlagged: on a remote as locally, a backup that
// tripped the shrink guard and the last one before it outlive --keep,
// also when the warnings are sealed (an encrypted backup's manifest
// says only "shrank"). Without that, a remote with --keep 1 removed the
// last good backup before an emptied database the next day.
func TestPruneKeepsShrinkFlagged(t *testing.T) {
	ctx := context.Background()
	sd := testserver.StartSSHD(t)
	r, err := remote.Open(ctx, sd.URL(), remote.Options{SSHKey: sd.Key, KnownHosts: sd.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const src = "/srv/app/app.db"
	put := func(name, body string) {
		b := []byte(body)
		if err := r.Put(ctx, name, remote.Source{R: bytes.NewReader(b), Size: int64(len(b)), SHA256: sum(b)}); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	names := []string{"app.db.20261201_020000", "app.db.20261202_020000", "app.db.20261203_020000", "app.db.20261204_020000", "app.db.20261205_020000"}
	for i, n := range names {
		manifest := `{"source":"` + src + `"}`
		if i == 2 { // the day the database was emptied: sealed warnings, clear flag
			manifest = `{"source":"` + src + `","encryption":"age","sealed":"eA==","shrank":true}`
		}
		put(n, "backup "+n)
		put(n+".sha256", sum([]byte("backup "+n))+"  "+n+"\n")
		put(n+".json", manifest)
	}
	rep, err := remote.Prune(ctx, r, remote.PruneOptions{Owner: remote.Owner{Source: src}, Newest: names[4], Policy: retention.Policy{Last: 1}, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, d := range rep.Kept {
		kept[d.Name] = true
	}
	for _, want := range []string{names[4], names[2], names[1]} {
		if !kept[want] {
			t.Errorf("%s removed; kept %v", want, kept)
		}
	}
	if len(rep.Kept) != 3 {
		t.Errorf("kept %d backups, want 3 (newest, flagged, last before it): %v", len(rep.Kept), kept)
	}
}

// TestGetReadAnyWay: a download read in small pieces through a wrapper
// (which hides any WriteTo from io.Copy) gives the file's bytes, and one
// closed halfway stops without hanging, on every backend.
func TestGetReadAnyWay(t *testing.T) {
	ctx := context.Background()
	for _, tg := range servers(t) {
		t.Run(tg.name, func(t *testing.T) {
			r, err := remote.Open(ctx, tg.url, tg.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			data := make([]byte, 30<<20+5)
			rand.Read(data)
			if err := r.Put(ctx, "big", remote.Source{R: bytes.NewReader(data), Size: int64(len(data)), SHA256: sum(data)}); err != nil {
				t.Fatal(err)
			}
			rc, err := r.Get(ctx, "big")
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := io.CopyBuffer(&got, struct{ io.Reader }{rc}, make([]byte, 4000)); err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("got %d bytes that differ from the %d put", got.Len(), len(data))
			}
			rc, err = r.Get(ctx, "big")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			// The connection still works after the abandoned download.
			if _, err := r.Stat(ctx, "big"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
