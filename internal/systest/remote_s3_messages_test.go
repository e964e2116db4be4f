package systest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlite-backup/internal/testdb"
	"sqlite-backup/internal/testserver"
)

// TestRemoteS3Messages: against a real versitygw, each S3 setup mistake
// reads as what it is. No credentials at all says so and where they were
// looked for (not "Access Denied"); a missing bucket's hint creates it at
// the endpoint given (--s3-endpoint or AWS_ENDPOINT_URL), not at AWS; a
// bucket name S3 refuses is a usage error (exit 2) with the naming rules,
// whether the library or the server refuses it.
func TestRemoteS3Messages(t *testing.T) {
	s3 := testserver.StartS3(t)
	s3.MakeBucket(t, "backups")
	home := t.TempDir()
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "SQLITE_BACKUP_") && !strings.HasPrefix(kv, "HOME=") {
			base = append(base, kv)
		}
	}
	base = append(base, "HOME="+home, "SQLITE_BACKUP_REMOTE_BACKOFF=10ms")
	creds := []string{"AWS_ACCESS_KEY_ID=" + s3.Access, "AWS_SECRET_ACCESS_KEY=" + s3.Secret, "AWS_REGION=us-east-1"}
	env := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	ep := s3.Endpoint()
	e := &remoteEnv{}

	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want []string // in stderr
		not  []string
	}{
		{"no credentials", env(), []string{"list", "--remote", "s3://backups/app", "--s3-endpoint", ep}, 1,
			[]string{"remote s3://backups/app: authentication failed: no S3 credentials found (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and " + filepath.Join(home, ".aws", "credentials") + " does not exist)",
				"hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a systemd unit reads them from its EnvironmentFile=), or put them in the [default] section of " + filepath.Join(home, ".aws", "credentials") + "\n"},
			[]string{"authentication failed: list"}}, // not the server's Access Denied first
		{"no credentials, a profile named", env("AWS_PROFILE=backup", "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "creds")),
			[]string{"list", "--remote", "s3://backups/app", "--s3-endpoint", ep}, 1,
			[]string{"no S3 credentials found", filepath.Join(home, "creds") + " does not exist", "[backup] section of " + filepath.Join(home, "creds")},
			nil},
		{"missing bucket, --s3-endpoint", env(creds...), []string{"list", "--remote", "s3://nosuchbucket/app", "--s3-endpoint", ep}, 1,
			[]string{"remote s3://nosuchbucket/app: missing bucket: bucket \"nosuchbucket\" does not exist at 127.0.0.1:",
				"hint: create it first (aws --endpoint-url " + ep + " s3 mb s3://nosuchbucket), or check the bucket name and --s3-endpoint\n"},
			nil},
		{"missing bucket, AWS_ENDPOINT_URL", env(append(creds, "AWS_ENDPOINT_URL="+ep)...), []string{"list", "--remote", "s3://nosuchbucket/app"}, 1,
			[]string{"hint: create it first (aws --endpoint-url " + ep + " s3 mb s3://nosuchbucket)"},
			nil},
		{"bucket name too short", env(creds...), []string{"list", "--remote", "s3://nb/app", "--s3-endpoint", ep}, 2,
			[]string{"remote s3://nb/app: bad remote: bucket \"nb\": bucket name cannot be shorter than 3 characters\n",
				"hint: S3 bucket names are 3 to 63 characters: lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit, e.g. s3://acme-backups/app\n"},
			[]string{"transfer failed"}},
		{"bucket name the server refuses", env(creds...), []string{"list", "--remote", "s3://Bad_Name/app", "--s3-endpoint", ep}, 2,
			[]string{"remote s3://Bad_Name/app: bad remote: bucket \"Bad_Name\": the server refuses the name", "hint: S3 bucket names are 3 to 63 characters"},
			[]string{"transfer failed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.run(t, c.env, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, c.code, r.out, r.err)
			}
			for _, w := range c.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			for _, n := range append(c.not, s3.Secret) {
				if strings.Contains(r.err, n) {
					t.Errorf("stderr has %q:\n%s", n, r.err)
				}
			}
		})
	}

	// A backup to a bucket name S3 refuses is the same usage error (exit
	// 2), not a transfer that failed.
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	testdb.Create(t, src, testdb.Options{Rows: 10})
	r := e.run(t, env(creds...), "--source", src, "--backup-dir", filepath.Join(dir, "bk"), "--remote", "s3://nb/app", "--s3-endpoint", ep)
	if r.code != 2 || !strings.Contains(r.err, `bad remote: bucket "nb"`) || strings.Contains(r.err, "transfer failed") {
		t.Fatalf("backup to s3://nb: exit %d\n%s%s", r.code, r.out, r.err)
	}
}
