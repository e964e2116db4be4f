package chain

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/snapshot"
)

func cli(t testing.TB, db string, args ...string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", append([]string{"-cmd", ".timeout 5000", db}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v: %s", db, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// clock names points one minute apart.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }
func (c *clock) tick()          { c.t = c.t.Add(time.Minute) }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.Local)} }

// full takes a full backup of src into dir the tool's way (snapshot.Run)
// and starts a chain on it.
func full(t testing.TB, src, dir string, c *clock) Point {
	t.Helper()
	res, err := snapshot.Run(context.Background(), snapshot.Options{Source: src, Dir: dir, BusyTimeout: 5 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := IndexFull(context.Background(), FullOptions{Path: res.Path, DB: filepath.Base(src), Index: pageindex.Path(dir, filepath.Base(src))})
	if err != nil {
		t.Fatal(err)
	}
	ch.Checked = "integrity_check"
	sum, err := manifest.FileSHA256(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	return Point{Path: res.Path, SHA256: sum, Chain: ch}
}

// incName names an increment the way the wiring will.
func incName(dir, db string, c *clock) string {
	return filepath.Join(dir, db+"."+c.now().Format("20060102_150405")+".ltx")
}

// headerBytesBackupRewrites are the bytes of page 1 in which the C
// CLI's .backup and a materialized point may differ: the file format
// (a backup of a WAL database says WAL, a point is self-contained),
// and what the backup writes anew: the file change counter, the schema
// cookie (the destination's old one plus one: 1 for a new file), the
// version-valid-for number and the SQLite version.
var headerBytesBackupRewrites = func() map[int]bool {
	m := map[int]bool{18: true, 19: true}
	for _, r := range [][2]int{{24, 28}, {40, 44}, {92, 100}} {
		for i := r[0]; i < r[1]; i++ {
			m[i] = true
		}
	}
	return m
}()

// samePages compares two database files page by page, page 1 but for
// the header bytes a backup rewrites; it returns what differs. It reads
// both a chunk at a time: the lock-byte page test compares files of
// more than 1 GiB.
func samePages(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	sa, _ := fa.Stat()
	sb, _ := fb.Stat()
	if sa.Size() != sb.Size() {
		return fmt.Errorf("%s is %d bytes, %s %d", a, sa.Size(), b, sb.Size())
	}
	hdr := make([]byte, 100)
	if _, err := fa.ReadAt(hdr, 0); err != nil {
		return err
	}
	ps := int64(hdr[16])<<8 | int64(hdr[17])
	if ps == 1 {
		ps = 65536
	}
	per := max(1<<20/ps, 1) * ps
	x, y := make([]byte, per), make([]byte, per)
	for off := int64(0); off < sa.Size(); off += per {
		n := min(per, sa.Size()-off)
		if _, err := fa.ReadAt(x[:n], off); err != nil {
			return err
		}
		if _, err := fb.ReadAt(y[:n], off); err != nil {
			return err
		}
		for p := int64(0); p < n; p += ps {
			if off+p == 0 {
				for i := int64(0); i < ps; i++ {
					if x[i] != y[i] && !headerBytesBackupRewrites[int(i)] {
						return fmt.Errorf("page 1 differs at byte %d", i)
					}
				}
				continue
			}
			if !bytes.Equal(x[p:p+ps], y[p:p+ps]) {
				return fmt.Errorf("page %d differs", (off+p)/ps+1)
			}
		}
	}
	return nil
}

// reference is the C CLI's .backup of src now.
func reference(t testing.TB, src, out string) {
	t.Helper()
	cli(t, src, ".backup "+out)
}

// judge compares a materialized point with the C CLI's backup of the
// source at that point: same pages, sqldiff silent, the C CLI's
// integrity_check ok.
func judge(t testing.TB, got, ref string) {
	t.Helper()
	if err := samePages(got, ref); err != nil {
		t.Fatalf("materialized %s against .backup %s: %v", got, ref, err)
	}
	out, err := exec.Command("sqldiff", got, ref).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("sqldiff %s %s: %v: %.500s", got, ref, err, out)
	}
	if r := cli(t, got, "PRAGMA integrity_check"); r != "ok" {
		t.Fatalf("integrity_check of %s: %s", got, r)
	}
}

// writer is the application: a C sqlite3 process that keeps the
// database open between statements (so WAL frames stay unchekpointed
// when it says so). It must be another process: POSIX locks belong to
// the process, and the backup closing its own descriptors of the
// database would drop the locks of a connection in the test's process.
type writer struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer
	n      int
}

func startWriter(t testing.TB, db string) *writer {
	t.Helper()
	w := &writer{stderr: &bytes.Buffer{}}
	w.cmd = exec.Command("sqlite3", "-batch", "-bail", db)
	var err error
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.out = bufio.NewReader(out)
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close() })
	w.exec(t, ".timeout 5000")
	return w
}

// exec runs statements and waits until the writer has run them.
func (w *writer) exec(t testing.TB, sql string) {
	t.Helper()
	w.n++
	mark := fmt.Sprintf("sync-%d", w.n)
	if !strings.HasPrefix(sql, ".") && !strings.HasSuffix(strings.TrimSpace(sql), ";") {
		sql += ";"
	}
	if _, err := fmt.Fprintf(w.in, "%s\nSELECT '%s';\n", sql, mark); err != nil {
		t.Fatalf("writer: %v: %s", err, w.stderr)
	}
	for {
		line, err := w.out.ReadString('\n')
		if err != nil {
			t.Fatalf("writer after %q: %v: %s", sql, err, w.stderr)
		}
		if strings.TrimSpace(line) == mark {
			break
		}
	}
	if w.stderr.Len() > 0 {
		t.Fatalf("writer: %q: %s", sql, w.stderr)
	}
}

func (w *writer) close() {
	if w.in != nil {
		w.in.Close()
		w.cmd.Wait()
		w.in = nil
	}
}
