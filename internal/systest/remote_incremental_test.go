package systest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRemoteIncremental: points of incremental chains go off-site to a
// real sshd and a real versitygw, each run sending only its new point;
// retention there keeps every point a kept one needs (a full every 3,
// --keep 2); verify and restore of a remote increment fetch its chain
// and materialize it; a damaged full on the remote fails every point
// that needs it (exit 3), naming it.
func TestRemoteIncremental(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT hex(randomblob(40)) FROM generate_series(1, 20000);")
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o700)
	backup := func(keep string) remoteBackupJSON {
		t.Helper()
		args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL,
			"--incremental", "--full-every", "3", "--keep", keep, "--json"}, e.flags...)
		return parseBackup(t, e.run(t, nil, args...).must(t).out)
	}
	rows := map[string]string{}
	var names []string
	for i := range 6 {
		cli3(t, src, fmt.Sprintf("UPDATE t SET v = 'run %d' WHERE id %% 1000 = %d; INSERT INTO t(v) VALUES ('row of run %d');", i, i, i))
		b := backup("2")
		name := filepath.Base(b.Path)
		names = append(names, name)
		rows[name] = cli3(t, src, "SELECT count(*), group_concat(DISTINCT v) FROM t WHERE v LIKE 'run%' OR v LIKE 'row of%'")
		for _, r := range b.Remotes {
			// Only the new point travels: the rest is there already.
			if r.Error != "" || len(r.Uploaded) != 1 || r.Uploaded[0] != name {
				t.Fatalf("run %d, %s: uploaded %v, error %q", i, r.Remote, r.Uploaded, r.Error)
			}
		}
	}
	// Runs 0-5: full, +1, +2, +3, full, +1. --keep 2 keeps the last two
	// points, here and there: the newest full and its increment.
	local := sha256sumCheck(t, bdir)
	slices.Sort(local)
	kept := slices.Clone(names[4:])
	slices.Sort(kept)
	if !slices.Equal(local, kept) {
		t.Fatalf("local after --keep 2: %v, want %v", local, names[4:])
	}
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		got := sha256sumCheck(t, d)
		slices.Sort(got)
		if !slices.Equal(got, local) {
			t.Fatalf("%s holds %v, local %v", d, got, local)
		}
	}

	// One more increment: --keep 1 keeps it and, needed by it, its
	// parent and its full.
	cli3(t, src, "INSERT INTO t(v) VALUES ('row of run 6');")
	last := filepath.Base(backup("1").Path)
	rows[last] = cli3(t, src, "SELECT count(*), group_concat(DISTINCT v) FROM t WHERE v LIKE 'run%' OR v LIKE 'row of%'")
	want := []string{names[4], names[5], last}
	slices.Sort(want)
	for _, d := range []string{bdir, e.sshd.Dir, e.s3Dir} {
		got := sha256sumCheck(t, d)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s after --keep 1: %v, want %v (the newest needs its full)", d, got, want)
		}
	}

	for _, url := range []string{e.sshd.URL(), e.s3URL} {
		point := strings.TrimSuffix(url, "/") + "/" + last
		v := e.run(t, nil, append([]string{"verify", point}, e.flags...)...).must(t)
		if !strings.Contains(v.out, "ok (sha256 ok, materialized from 3 files)") {
			t.Fatalf("verify %s:\n%s", point, v.out)
		}
		got := filepath.Join(t.TempDir(), "restored.db")
		r := e.run(t, nil, append([]string{"restore", point, "--to", got}, e.flags...)...).must(t)
		if !strings.Contains(r.out, "materialized") {
			t.Fatalf("restore %s:\n%s", point, r.out)
		}
		if g := cli3(t, got, "SELECT count(*), group_concat(DISTINCT v) FROM t WHERE v LIKE 'run%' OR v LIKE 'row of%'"); g != rows[last] {
			t.Fatalf("restored from %s: %q, the source had %q", url, g, rows[last])
		}
		if ok := strings.TrimSpace(cli3(t, got, "PRAGMA integrity_check")); ok != "ok" {
			t.Fatalf("restored from %s: %s", url, ok)
		}
	}

	// restore --at from a remote: the newest point taken by then. --at
	// counts in whole seconds: one second on, so that a last point taken
	// in this very second (restores are quick) is at or before it.
	at := filepath.Join(t.TempDir(), "at.db")
	r := e.run(t, nil, append([]string{"restore", "--at", time.Now().Add(time.Second).Format(time.RFC3339), "--remote", e.s3URL, "--source", src, "--to", at}, e.flags...)...).must(t)
	if !strings.Contains(r.err, "is "+strings.TrimSuffix(e.s3URL, "/")+"/"+last) {
		t.Fatalf("restore --at --remote picked another point:\n%s", r.err)
	}
	if g := cli3(t, at, "SELECT count(*), group_concat(DISTINCT v) FROM t WHERE v LIKE 'run%' OR v LIKE 'row of%'"); g != rows[last] {
		t.Fatalf("restored --at from s3: %q, the source had %q", g, rows[last])
	}

	// Damage to the full on the SFTP server: the increment needs it.
	flipByte(t, filepath.Join(e.sshd.Dir, names[4]), 40000)
	point := strings.TrimSuffix(e.sshd.URL(), "/") + "/" + last
	v := e.run(t, nil, append([]string{"verify", point}, e.flags...)...)
	if v.code != 3 || !strings.Contains(v.out, "FAILED") || !strings.Contains(v.out, names[4]) {
		t.Fatalf("verify of a point whose full is damaged on the remote: exit %d\n%s%s", v.code, v.out, v.err)
	}
	r = e.run(t, nil, append([]string{"restore", point, "--to", filepath.Join(dir, "broken.db")}, e.flags...)...)
	if r.code != 3 || !strings.Contains(r.err, names[4]) {
		t.Fatalf("restore of a point whose full is damaged on the remote: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "broken.db")); err == nil {
		t.Fatal("a restore that failed left the target")
	}
}

// TestRemoteIncrementalRetention: random --keep rules over runs that
// build chains (a full every 3) on a real sshd and a real versitygw;
// after every run, every point left on either remote verifies from
// there (verify URL/NAME fetches its chain and materializes it), and so
// does every point left here: pruning never left a kept point without a
// file it needs.
func TestRemoteIncrementalRetention(t *testing.T) {
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT hex(randomblob(40)) FROM generate_series(1, 20000);")
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o700)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 31))
	for i := range iterations(8, 30) {
		cli3(t, src, fmt.Sprintf("UPDATE t SET v = 'run %d' WHERE id %% 500 = %d;", i, rng.IntN(500)))
		keep := strconv.Itoa(1 + rng.IntN(4))
		e.run(t, nil, append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL,
			"--incremental", "--full-every", "3", "--keep", keep}, e.flags...)...).must(t)
		for _, where := range []struct{ url, dir string }{{"", bdir}, {e.sshd.URL(), e.sshd.Dir}, {e.s3URL, e.s3Dir}} {
			var points []string
			for _, n := range sha256sumCheck(t, where.dir) {
				if where.url == "" {
					points = append(points, filepath.Join(bdir, n))
				} else {
					points = append(points, strings.TrimSuffix(where.url, "/")+"/"+n)
				}
			}
			for _, p := range points {
				if r := e.run(t, nil, append([]string{"verify", p}, e.flags...)...); r.code != 0 {
					t.Fatalf("run %d (--keep %s): verify %s: exit %d\n%s%s", i, keep, p, r.code, r.out, r.err)
				}
			}
		}
	}
}
