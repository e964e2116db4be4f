package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in, err string
	}{
		{"sftp://backup@host/srv/b", ""},
		{"sftp://host:2222/srv/b", ""},
		{"s3://bucket", ""},
		{"s3://bucket/a/b", ""},
		{"sftp://u:secret@host/srv", "password in the URL"},
		{"s3://bucket/p?x=1", "no ?query"},
		{"/srv/backups", "not a remote URL"},
		{"sftp:relative", "not a remote URL"},
	} {
		_, err := Parse(c.in)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Parse(%q) = %v, want %q", c.in, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Parse(%q): the password is in the error: %v", c.in, err)
		}
	}
}

func TestSplitObjectURL(t *testing.T) {
	for _, c := range []struct{ in, url, name string }{
		{"sftp://u@h:22/srv/b/app.db.20260101_000000", "sftp://u@h:22/srv/b", "app.db.20260101_000000"},
		{"s3://bucket/app.db.20260101_000000", "s3://bucket", "app.db.20260101_000000"},
		{"s3://bucket/p/q/app.db.20260101_000000.zst", "s3://bucket/p/q", "app.db.20260101_000000.zst"},
		{"s3://bucket/", "", ""},
		{"s3://bucket", "", ""},
	} {
		u, n, ok := SplitObjectURL(c.in)
		if u != c.url || n != c.name || ok != (c.name != "") {
			t.Errorf("SplitObjectURL(%q) = %q %q %v", c.in, u, n, ok)
		}
	}
}

func TestRetryBound(t *testing.T) {
	n := 0
	transient := &Error{URL: "s3://b", Kind: KindUnreachable, Err: errors.New("refused"), Transient: true}
	err := Retry(context.Background(), 4, time.Millisecond, func() error { n++; return transient })
	if n != 4 || !errors.Is(err, transient) {
		t.Fatalf("transient: %d tries, %v", n, err)
	}
	n = 0
	permanent := &Error{URL: "s3://b", Kind: KindAuth, Err: errors.New("denied")}
	Retry(context.Background(), 4, time.Millisecond, func() error { n++; return permanent })
	if n != 1 {
		t.Fatalf("permanent failure tried %d times", n)
	}
	n = 0
	Retry(context.Background(), 4, time.Millisecond, func() error {
		n++
		if n < 3 {
			return transient
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("recovered after %d tries", n)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"sftp://backup@host/srv":         "sftp://backup@host/srv",
		"sftp://u:secret@host/srv":       "sftp://u:xxxxx@host/srv",
		"https://AKIA:secret@s3.example": "https://AKIA:xxxxx@s3.example",
		"AKIA:secret@s3.example:9000":    "akia:xxxxx@s3.example:9000",
		"https://AKIA:sec ret@host/%zz":  "(unparsable remote URL)",
		"s3://bucket/prefix":             "s3://bucket/prefix",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A Tree path never leaves the remote location.
func TestCleanTreePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"ltx/0": true, "0009": true, "ltx/9/0000000000000001-0000000000000001.ltx": true,
		"": false, ".": false, "..": false, "../x": false, "ltx/../../x": false, "/etc": false, "ltx//0": false, "ltx/0/": false,
	} {
		if _, err := CleanTreePath(p); (err == nil) != ok {
			t.Errorf("CleanTreePath(%q): %v, want ok=%v", p, err, ok)
		}
	}
}
