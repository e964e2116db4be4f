// Package s3 is the s3:// remote: a bucket and key prefix on AWS S3 or
// any S3-compatible server, spoken to with github.com/minio/minio-go/v7.
// Credentials, region, endpoint and CA bundle come from the variables
// the AWS tools read. An upload is a multipart upload streamed from the
// file in bounded parts, each sent with its SHA-256 for the server to
// check; the object appears only when the upload completes, and the
// server's checksum of the whole must equal the one computed here from
// the same bytes whose SHA-256 the backup's sidecar records (a server
// that returns none is read back instead). A failed upload is aborted;
// what an interrupted run left is aborted by the next (Cleanup).
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/remote"
)

func init() { remote.Register("s3", Open) }

// PartSize and Threads bound memory: minio-go streams each part from the
// file (io.ReaderAt), so a part is never held whole in memory.
const (
	PartSize = 16 << 20
	Threads  = 4
)

// Client is one bucket and prefix.
type Client struct {
	url      string
	bucket   string
	prefix   string // "" or "dir/"
	endpoint string
	// endpointURL is the endpoint as given (--s3-endpoint or
	// AWS_ENDPOINT_URL*), "" for AWS: hints that run the aws CLI need it.
	endpointURL string
	// noCreds says where credentials were looked for when none were
	// found (requests then go unsigned); "" when some were. credFile
	// and profile are the shared credentials file and profile looked in.
	noCreds, credFile, profile string
	mc                         *minio.Client
}

// bucketRules is the hint for a bucket name S3 refuses.
const bucketRules = "S3 bucket names are 3 to 63 characters: lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit, e.g. s3://acme-backups/app"

// Open builds the client; nothing is sent until the first call.
func Open(ctx context.Context, u *url.URL, o remote.Options) (remote.Remote, error) {
	c := &Client{url: u.String(), bucket: u.Host}
	if p := strings.Trim(u.Path, "/"); p != "" {
		c.prefix = p + "/"
	}
	// The library's own check, before any request: a name S3 refuses is
	// a mistake in the URL, not a failed transfer.
	if err := s3utils.CheckValidBucketName(c.bucket); err != nil {
		return nil, c.fail(remote.KindUsage, false, fmt.Errorf("bucket %q: %s", c.bucket, lowerFirst(err.Error())), bucketRules)
	}
	ep := o.S3Endpoint
	for _, v := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if ep == "" {
			ep = os.Getenv(v)
		}
	}
	secure := true
	host := "s3.amazonaws.com"
	if ep != "" {
		// The endpoint is never quoted as given: it may hold a password.
		eu, err := url.Parse(ep)
		if err != nil || eu.Host == "" || (eu.Scheme != "http" && eu.Scheme != "https") {
			return nil, c.fail(remote.KindUsage, false, fmt.Errorf("endpoint %q: give a URL like https://s3.example.com or http://127.0.0.1:7070", remote.Redact(ep)), "")
		}
		if eu.User != nil {
			return nil, c.fail(remote.KindUsage, false, fmt.Errorf("endpoint %q: credentials in the endpoint URL are refused (they would show in process lists and logs)", remote.Redact(ep)),
				"give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE in ~/.aws/credentials")
		}
		host, secure = eu.Host, eu.Scheme == "https"
		c.endpointURL = ep
	}
	c.endpoint = host
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	tr, err := transport()
	if err != nil {
		return nil, c.fail(remote.KindUsage, false, err, "AWS_CA_BUNDLE names a PEM file with the endpoint's CA certificate")
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{}, // AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, AWS_PROFILE
	})
	// With none found the library signs nothing and the server answers
	// Access Denied: remember where they were looked for, to say so.
	if v, _ := creds.GetWithContext(nil); v.SignerType == credentials.SignatureAnonymous {
		c.noCreds, c.credFile, c.profile = credentialPlaces()
	}
	mc, err := minio.New(host, &minio.Options{
		Creds:           creds,
		Secure:          secure,
		Region:          region,
		Transport:       tr,
		TrailingHeaders: true, // per-part SHA-256 sent as a trailer while streaming
		BucketLookup:    minio.BucketLookupAuto,
		MaxRetries:      1, // remote.Retry does the retrying, with backoff
	})
	if err != nil {
		return nil, c.fail(remote.KindUsage, false, err, "")
	}
	c.mc = mc
	return c, nil
}

// credentialPlaces says where credentials were looked for, for an error
// when none were found: the AWS variables, then the shared credentials
// file and profile the AWS CLI would read.
func credentialPlaces() (places, file, profile string) {
	file = os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	state := ""
	if file == "" {
		if h, err := os.UserHomeDir(); err == nil {
			file = filepath.Join(h, ".aws", "credentials")
		} else {
			file, state = "~/.aws/credentials", "cannot be found: HOME is not set"
		}
	}
	profile = os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = "default"
	}
	if state == "" {
		switch _, err := os.Stat(file); {
		case err == nil:
			state = fmt.Sprintf("has no keys for profile %q", profile)
		case errors.Is(err, fs.ErrNotExist):
			state = "does not exist"
		default:
			state = "cannot be read: " + err.Error()
		}
	}
	return fmt.Sprintf("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and %s %s", file, state), file, profile
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// transport honours AWS_CA_BUNDLE as the AWS CLI does: the bundle's
// certificates are trusted besides the system's.
func transport() (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = Threads * 2
	tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 5 * time.Minute
	if p := os.Getenv("AWS_CA_BUNDLE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("AWS_CA_BUNDLE %q: no PEM certificate in it", p)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}

func (c *Client) fail(kind string, transient bool, err error, h string) error {
	return remote.Fail(c.url, kind, transient, err, h)
}

// classify names what went wrong the way an operator looks for it.
func (c *Client) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *remote.Error
	if errors.As(err, &re) {
		return err
	}
	var ua x509.UnknownAuthorityError
	var cv *tls.CertificateVerificationError
	var hn x509.HostnameError
	if errors.As(err, &ua) || errors.As(err, &cv) || errors.As(err, &hn) {
		return c.fail(remote.KindTLS, false, fmt.Errorf("%s: %w", op, err), "for an endpoint with a private CA: AWS_CA_BUNDLE=/path/to/ca.pem")
	}
	resp := minio.ToErrorResponse(err)
	err = fmt.Errorf("%s: %w", op, err)
	denied := resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized
	switch resp.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed",
		"XAdminUserNotFound": // versitygw's word for an unknown access key
		denied = true
	}
	if c.noCreds != "" && (denied || resp.Code == "NoSuchBucket") {
		// Unsigned, every answer is about the missing credentials (a
		// server may even call a bucket it will not show missing).
		return c.fail(remote.KindAuth, false, fmt.Errorf("no S3 credentials found (%s); the server refused the unsigned request: %w", c.noCreds, err),
			fmt.Sprintf("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a systemd unit reads them from its EnvironmentFile=), or put them in the [%s] section of %s", c.profile, shellQuote(c.credFile)))
	}
	switch resp.Code {
	case "NoSuchBucket":
		return c.fail(remote.KindNoBucket, false, fmt.Errorf("bucket %q does not exist at %s", c.bucket, c.endpoint), "create it first ("+c.makeBucket()+"), or check the bucket name and --s3-endpoint")
	case "InvalidBucketName":
		return c.fail(remote.KindUsage, false, fmt.Errorf("bucket %q: the server refuses the name: %w", c.bucket, err), bucketRules)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed",
		"XAdminUserNotFound":
		return c.fail(remote.KindAuth, false, err, "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE in ~/.aws/credentials)")
	case "QuotaExceeded", "EntityTooLarge", "XMinioStorageFull", "StorageFull":
		return c.fail(remote.KindQuota, false, err, "")
	case "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "InvalidChecksum":
		return c.fail(remote.KindMismatch, true, err, "")
	}
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
		return c.fail(remote.KindAuth, false, err, "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE in ~/.aws/credentials)")
	}
	if resp.StatusCode >= 500 || resp.StatusCode == 0 {
		kind := remote.KindIO
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || errors.As(err, &ne) {
			kind = remote.KindUnreachable
		}
		return c.fail(kind, true, err, "")
	}
	return c.fail(remote.KindIO, false, err, "")
}

// makeBucket is the aws CLI command that creates the bucket where this
// client looks for it: at the endpoint given, not at AWS.
func (c *Client) makeBucket() string {
	cmd := "aws "
	if c.endpointURL != "" {
		cmd += "--endpoint-url " + shellQuote(c.endpointURL) + " "
	}
	return cmd + "s3 mb " + shellQuote("s3://"+c.bucket)
}

// shellQuote quotes s for a hint's command line only where a shell needs it.
func shellQuote(s string) string { return hint.Quote(s) }

// ctxErr prefers the interruption to the failure it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && err != nil {
		return ctx.Err()
	}
	return err
}

// Put hashes the file in the parts the upload will use, uploads, and
// compares the server's checksum with the one computed here.
func (c *Client) Put(ctx context.Context, name string, src remote.Source) error {
	key := c.prefix + name
	whole, composite, err := localSums(src.R, src.Size)
	if err != nil {
		return fmt.Errorf("read %s for upload: %w", name, err)
	}
	if whole != src.SHA256 {
		return c.fail(remote.KindMismatch, false, fmt.Errorf("the local file %s no longer has the SHA-256 its sidecar records (%s, now %s): not uploaded", name, src.SHA256, whole), "check it where it lies, in the backup directory: sqlite-backup verify "+hint.Quote(name))
	}
	opts := minio.PutObjectOptions{
		PartSize:     PartSize,
		NumThreads:   Threads,
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{"sha256": src.SHA256},
	}
	if src.Size <= PartSize {
		// One PUT: the server checks the whole object against the SHA-256
		// the sidecar records, sent up front.
		opts.UserMetadata["x-amz-checksum-sha256"] = base64.StdEncoding.EncodeToString(whole32(whole))
	} else {
		// Multipart: each part's SHA-256 goes along as a trailer for the
		// server to check; the composite is compared below. Unsigned
		// payload (the headers are still signed): versitygw v1.8.0
		// rejects every signed-chunk upload with a checksum trailer.
		opts.Checksum = minio.ChecksumSHA256
		opts.DisableContentSha256 = true
	}
	if src.Progress != nil {
		opts.Progress = &progress{fn: src.Progress}
	}
	info, err := c.mc.PutObject(ctx, c.bucket, key, io.NewSectionReader(src.R, 0, src.Size), src.Size, opts)
	if err != nil {
		// minio-go aborts a failed multipart upload with ctx, which an
		// interruption has cancelled: abort again without it, briefly.
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.mc.RemoveIncompleteUpload(actx, c.bucket, key)
		cancel()
		return ctxErr(ctx, c.classify("upload "+key, err))
	}
	got := info.ChecksumSHA256
	want := base64.StdEncoding.EncodeToString(whole32(whole))
	if src.Size > PartSize {
		want = fmt.Sprintf("%s-%d", composite, (src.Size+PartSize-1)/PartSize)
	}
	if got == "" {
		// No checksum from this server: read the object back.
		err = c.readBack(ctx, key, src.Size, src.SHA256)
	} else if got != want && !(src.Size > PartSize && got == strings.SplitN(want, "-", 2)[0]) {
		err = c.fail(remote.KindMismatch, true, fmt.Errorf("%s: server checksum %s, expected %s", key, got, want), "")
	}
	if err == nil {
		var o remote.Object
		if o, err = c.Stat(ctx, name); err == nil && o.Size != src.Size {
			err = c.fail(remote.KindMismatch, true, fmt.Errorf("%s is %d bytes on the server, expected %d", key, o.Size, src.Size), "")
		}
	}
	if err != nil {
		// Unproven: it must not stay under the final name.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.mc.RemoveObject(dctx, c.bucket, key, minio.RemoveObjectOptions{})
		cancel()
		return ctxErr(ctx, err)
	}
	return nil
}

func whole32(hexsum string) []byte {
	b, _ := hex.DecodeString(hexsum)
	return b
}

// localSums returns the file's SHA-256 (hex) and S3's composite checksum
// of its parts (base64 of the SHA-256 of the parts' SHA-256s).
func localSums(r io.ReaderAt, size int64) (string, string, error) {
	whole := sha256.New()
	var parts bytes.Buffer
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += PartSize {
		n := min(PartSize, size-off)
		ph := sha256.New()
		if _, err := io.CopyBuffer(io.MultiWriter(whole, ph), io.NewSectionReader(r, off, n), buf); err != nil {
			return "", "", err
		}
		parts.Write(ph.Sum(nil))
	}
	c := sha256.Sum256(parts.Bytes())
	return hex.EncodeToString(whole.Sum(nil)), base64.StdEncoding.EncodeToString(c[:]), nil
}

func (c *Client) readBack(ctx context.Context, key string, size int64, sum string) error {
	o, err := c.mc.GetObject(ctx, c.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return c.classify("read back "+key, err)
	}
	defer o.Close()
	h := sha256.New()
	n, err := io.Copy(h, o)
	if err != nil {
		return c.classify("read back "+key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return c.fail(remote.KindMismatch, true, fmt.Errorf("%s on the server is %d bytes, sha256 %s; expected %d bytes, sha256 %s", key, n, got, size, sum), "")
	}
	return nil
}

// progress is minio-go's progress hook: it is "read" with each chunk sent.
type progress struct {
	fn   func(int64)
	done int64
}

func (p *progress) Read(b []byte) (int, error) {
	p.done += int64(len(b))
	p.fn(p.done)
	return len(b), nil
}

// List returns the objects directly under the prefix.
func (c *Client) List(ctx context.Context) ([]remote.Object, error) {
	var out []remote.Object
	for o := range c.mc.ListObjects(ctx, c.bucket, minio.ListObjectsOptions{Prefix: c.prefix}) {
		if o.Err != nil {
			return nil, c.classify("list "+c.prefix, o.Err)
		}
		name := strings.TrimPrefix(o.Key, c.prefix)
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		out = append(out, remote.Object{Name: name, Size: o.Size, ModTime: o.LastModified})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Stat describes one object.
func (c *Client) Stat(ctx context.Context, name string) (remote.Object, error) {
	oi, err := c.mc.StatObject(ctx, c.bucket, c.prefix+name, minio.StatObjectOptions{})
	if err != nil {
		if r := minio.ToErrorResponse(err); r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket" {
			return remote.Object{}, fmt.Errorf("%s/%s: %w", strings.TrimSuffix(c.url, "/"), name, remote.ErrNotExist)
		}
		return remote.Object{}, c.classify("stat "+name, err)
	}
	return remote.Object{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete removes one object; a missing one is fine.
func (c *Client) Delete(ctx context.Context, name string) error {
	return c.classify("remove "+name, c.mc.RemoveObject(ctx, c.bucket, c.prefix+name, minio.RemoveObjectOptions{}))
}

// Cleanup aborts incomplete multipart uploads under the prefix whose
// final names stale accepts.
func (c *Client) Cleanup(ctx context.Context, stale func(string, time.Time) bool) error {
	for u := range c.mc.ListIncompleteUploads(ctx, c.bucket, c.prefix, false) {
		if u.Err != nil {
			return c.classify("list incomplete uploads", u.Err)
		}
		name := strings.TrimPrefix(u.Key, c.prefix)
		if name == "" || strings.Contains(name, "/") || !stale(name, u.Initiated) {
			continue
		}
		if err := c.mc.RemoveIncompleteUpload(ctx, c.bucket, u.Key); err != nil {
			return c.classify("abort incomplete upload of "+name, err)
		}
	}
	return nil
}

// Close has nothing to release: connections are pooled per process.
func (c *Client) Close() error { return nil }

// ListDir lists the objects directly under prefix/dir/ (remote.Tree);
// none there lists empty.
func (c *Client) ListDir(ctx context.Context, dir string) ([]remote.Object, error) {
	dir, err := remote.CleanTreePath(dir)
	if err != nil {
		return nil, c.fail(remote.KindUsage, false, err, "")
	}
	pre := c.prefix + dir + "/"
	var out []remote.Object
	for o := range c.mc.ListObjects(ctx, c.bucket, minio.ListObjectsOptions{Prefix: pre}) {
		if o.Err != nil {
			return nil, c.classify("list "+pre, o.Err)
		}
		name := strings.TrimPrefix(o.Key, pre)
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		out = append(out, remote.Object{Name: name, Size: o.Size, ModTime: o.LastModified})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// GetPath streams the object prefix/p (remote.Tree): with parallel in
// ranged GETs as Get does, else in one GET.
func (c *Client) GetPath(ctx context.Context, p string, parallel bool) (io.ReadCloser, error) {
	p, err := remote.CleanTreePath(p)
	if err != nil {
		return nil, c.fail(remote.KindUsage, false, err, "")
	}
	return c.get(ctx, p, parallel)
}
