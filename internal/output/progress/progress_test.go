package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 1000, 0, "copy   0/1000 pages    0%"},
		{250, 1000, time.Second, "copy   250/1000 pages   25%  1 MB/s  ETA 0:03"},
		{1000, 1000, 2 * time.Second, "copy   1000/1000 pages  100%  2 MB/s"},
		{2000, 1000, time.Second, "copy   1000/1000 pages  100%  4 MB/s"}, // clamped
		{30, 100, time.Hour, "copy   30/100 pages   30%  0 MB/s  ETA 2:20:00"},
	} {
		if got := Format("copy", c.done, c.total, 4096, c.elapsed); got != c.want {
			t.Errorf("Format(%d, %d, %s) = %q, want %q", c.done, c.total, c.elapsed, got, c.want)
		}
	}
}

func TestLineThrottlesAndClears(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, "verify", 4096)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	l.Update(1, 100)
	l.Update(2, 100) // same instant: throttled
	now = now.Add(time.Second)
	l.Update(50, 100)
	l.Update(100, 100) // the last update is always drawn
	l.Done()
	l.Update(100, 100) // after Done: nothing
	out := b.String()
	if n := strings.Count(out, "\r"); n != 4 {
		t.Fatalf("%d redraws in %q, want 3 and a clear", n, out)
	}
	if !strings.HasSuffix(out, "\r\x1b[K") || strings.Contains(out, "\n") {
		t.Fatalf("line not cleared in place: %q", out)
	}
}

func TestNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is not a terminal")
	}
}
