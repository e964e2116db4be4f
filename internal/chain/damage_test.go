package chain

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/verify"
)

// buildChain makes a full and three increments of a database that keeps
// growing and changing, and returns the points.
func buildChain(t *testing.T, dir string) []Point {
	t.Helper()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	cli(t, src, `PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000) INSERT INTO t(v) SELECT randomblob(300) FROM c;`)
	app := startWriter(t, src)
	app.exec(t, "PRAGMA wal_autocheckpoint=0")
	c := newClock()
	points := []Point{full(t, src, bdir, c)}
	for _, q := range []string{
		"UPDATE t SET v = randomblob(300) WHERE id % 97 = 0",
		"INSERT INTO t(v) SELECT randomblob(200) FROM t LIMIT 200",
		"UPDATE t SET v = randomblob(300) WHERE id BETWEEN 10 AND 40",
	} {
		app.exec(t, q)
		c.tick()
		inc, err := WriteIncrement(context.Background(), IncrementOptions{Source: src, Parent: points[len(points)-1],
			Index: pageindex.Path(bdir, "app.db"), Path: incName(bdir, "app.db", c)})
		if err != nil {
			t.Fatal(err)
		}
		points = append(points, inc.Point)
	}
	return points
}

// pagesOf lists the pages an increment holds.
func pagesOf(t *testing.T, path string) map[uint32]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := ltx.NewDecoder(bufio.NewReader(f))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	out := map[uint32]bool{}
	data := make([]byte, dec.Header().PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out[ph.Pgno] = true
	}
}

// TestDamage: a flipped byte or a missing file anywhere in a chain makes
// the materialization of every point that needs it fail as a failed
// verification naming that file, with or without the .sha256 hash to
// check it against; nothing is left under the final name; points that
// do not need the file still materialize.
func TestDamage(t *testing.T) {
	dir := t.TempDir()
	points := buildChain(t, dir)
	inc2 := points[2]
	// A page of the full that no increment replaces: its damage reaches
	// every point.
	replaced := map[uint32]bool{}
	for _, p := range points[1:] {
		for pg := range pagesOf(t, p.Path) {
			replaced[pg] = true
		}
	}
	basePage := uint32(0)
	for pg := uint32(points[0].Chain.Pages); pg > 1; pg-- {
		if !replaced[pg] {
			basePage = pg
			break
		}
	}
	if basePage == 0 {
		t.Fatal("every page of the full was replaced")
	}
	incSize := fileSize(t, inc2.Path)
	ps := int64(points[0].Chain.PageSize)

	cases := []struct {
		name    string
		file    Point
		damage  func(path string)
		needers []int // points whose materialization must fail
	}{
		{"increment: byte in a page", inc2, flipAt(incSize / 2), []int{2, 3}},
		{"increment: byte in the header", inc2, flipAt(13), []int{2, 3}},
		{"increment: byte in the trailer", inc2, flipAt(incSize - 3), []int{2, 3}},
		{"increment: truncated", inc2, func(p string) { os.Truncate(p, incSize-100) }, []int{2, 3}},
		{"increment: missing", inc2, func(p string) { os.Remove(p) }, []int{2, 3}},
		{"full: byte in a page no increment replaces", points[0], flipAt(int64(basePage-1)*ps + 100), []int{0, 1, 2, 3}},
		{"full: missing", points[0], func(p string) { os.Remove(p) }, []int{0, 1, 2, 3}},
	}
	for _, c := range cases {
		for _, withSum := range []bool{true, false} {
			name := c.name
			if !withSum {
				name += ", no sha256 known"
			}
			t.Run(name, func(t *testing.T) {
				saved, err := os.ReadFile(c.file.Path)
				if err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(c.file.Path, saved, 0o600)
				c.damage(c.file.Path)
				ps := append([]Point(nil), points...)
				if !withSum {
					for i := range ps {
						ps[i].SHA256 = ""
					}
				}
				need := map[int]bool{}
				for _, i := range c.needers {
					need[i] = true
				}
				for i := range ps {
					out := filepath.Join(t.TempDir(), "restored.db")
					_, err := Materialize(context.Background(), ps[:i+1], MaterializeOptions{Path: out})
					if !need[i] {
						if err != nil {
							t.Errorf("point %d does not need %s, yet: %v", i, c.file.Name(), err)
						}
						continue
					}
					var fe *verify.FailedError
					if !errors.As(err, &fe) {
						t.Fatalf("point %d: got %v, want a failed verification", i, err)
					}
					if i == c.needers[0] {
						t.Logf("point %d: %v", i, err)
					}
					if fe.Result.Path != c.file.Path {
						// Without the hash, damage to the full that no
						// decoder sees shows as the point's wrong state.
						if withSum || !strings.HasPrefix(c.name, "full: byte") || fe.Result.Path != ps[i].Path {
							t.Fatalf("point %d: the failure names %s, not %s: %v", i, fe.Result.Path, c.file.Path, err)
						}
					}
					if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("point %d: %s exists after a failure", i, out)
					}
					if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".sqlite-backup-tmp-*")); len(left) > 0 {
						t.Fatalf("temp files left: %v", left)
					}
				}
			})
		}
	}
}

// TestResolve: a chain is found from its points' manifests; a point
// whose parent's manifest is gone, or that links wrongly, is refused,
// naming what is missing or wrong.
func TestResolve(t *testing.T) {
	points := buildChain(t, t.TempDir())
	byName := map[string]Point{}
	for _, p := range points {
		byName[p.Name()] = p
	}
	got, err := Resolve(byName, points[3].Name())
	if err != nil || len(got) != 4 || got[0].Path != points[0].Path || got[3].Path != points[3].Path {
		t.Fatalf("resolve: %v %v", got, err)
	}
	delete(byName, points[1].Name())
	var fe *verify.FailedError
	if _, err := Resolve(byName, points[3].Name()); !errors.As(err, &fe) || fe.Result.Path != points[1].Name() {
		t.Fatalf("a missing point: %v", err)
	}
	if _, err := Resolve(byName, "nothing"); err == nil {
		t.Fatal("an unknown point resolved")
	}
	// Manifests that do not link.
	for name, broken := range map[string]func(p []Point){
		"wrong parent":    func(p []Point) { p[2].Chain.Parent = p[0].Name() },
		"wrong pre-state": func(p []Point) { p[2].Chain.PreState = p[0].Chain.State },
		"wrong seq":       func(p []Point) { p[2].Chain.Seq = 5 },
		"no full":         func(p []Point) { p[0].Chain.Kind = "increment" },
	} {
		ps := append([]Point(nil), points...)
		broken(ps)
		err := Validate(ps)
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func flipAt(off int64) func(string) {
	return func(p string) {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		f.ReadAt(b, off)
		b[0] ^= 0x10
		f.WriteAt(b, off)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
