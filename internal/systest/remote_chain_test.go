package systest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// completeOn are the backups in a remote's directory that are there
// whole: the file and both sidecars.
func completeOn(dir string) []string {
	var names []string
	sides, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, s := range sides {
		n := strings.TrimSuffix(s, ".json")
		_, e1 := os.Stat(n)
		_, e2 := os.Stat(n + ".sha256")
		if e1 == nil && e2 == nil {
			names = append(names, filepath.Base(n))
		}
	}
	slices.Sort(names)
	return names
}

// allRestore: every point a remote holds whole restores from there
// (restore URL/NAME fetches its chain, materializes and checks it), and
// list --remote names no orphan.
func allRestore(t *testing.T, e *remoteEnv, url, dir string) {
	t.Helper()
	for _, n := range completeOn(dir) {
		to := filepath.Join(t.TempDir(), "restored.db")
		r := e.run(t, nil, append([]string{"restore", url + "/" + n, "--to", to}, e.flags...)...)
		if r.code != 0 {
			t.Fatalf("restore %s/%s: exit %d (the remote holds %v)\n%s%s", url, n, r.code, completeOn(dir), r.out, r.err)
		}
		if ok := strings.TrimSpace(cli3(t, to, "PRAGMA integrity_check")); ok != "ok" {
			t.Fatalf("restored %s: %s", n, ok)
		}
	}
	l := e.run(t, nil, append([]string{"list", "--remote", url}, e.flags...)...).must(t)
	if strings.Contains(l.out, "ORPHAN") {
		t.Fatalf("list --remote %s:\n%s", url, l.out)
	}
}

// chainDB is a ~24 MB database of one 3000-byte blob a page, and
// change rewrites 30 % of its rows: each increment is ~7 MB.
func chainDB(t *testing.T, dir string) (src string, change func(i int)) {
	src = filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t(v) SELECT randomblob(3000) FROM generate_series(1, 6000);")
	return src, func(i int) {
		cli3(t, src, fmt.Sprintf("UPDATE t SET v = randomblob(3000) WHERE (id + %d) %% 10 < 3;", i))
	}
}

// TestRemoteIncrementalCutShort: a chain built here goes to a remote in
// one run that is cut short after its first point arrived, by SIGKILL
// of the run (sftp) or of the server (s3). Every point the remote then
// holds restores from it and list --remote shows no orphan: points
// travel parents first. A killed server fails the run, and its pending
// backups are every point the remote lacks (--keep 2 keeps the newest
// two and, needed by them, their whole chain). The next run completes
// the remote. Old code sent newest first: the first point there was the
// newest increment, without its chain.
func TestRemoteIncrementalCutShort(t *testing.T) {
	e := newRemoteEnv(t)
	for _, c := range []struct {
		name, url, dir string
		server         bool // kill the server, not the run
	}{
		{"sftp-run-killed", strings.TrimSuffix(e.sshd.URL(), "/") + "/cut", filepath.Join(e.sshd.Dir, "cut"), false},
		{"s3-server-killed", e.s3URL + "/cut", filepath.Join(e.s3Dir, "cut"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !c.server {
				os.Mkdir(c.dir, 0o755)
			}
			dir := t.TempDir()
			src, change := chainDB(t, dir)
			bdir := filepath.Join(dir, "backups")
			args := []string{"--source", src, "--backup-dir", bdir, "--incremental", "--full-every", "100", "--keep", "2"}
			for i := range 4 { // a full and 3 increments, here only
				change(i)
				e.run(t, nil, args...).must(t)
			}
			change(4)
			run := exec.Command("sqlite-backup", append(append(args, "--remote", c.url, "--json"), e.flags...)...)
			run.Env = e.env
			var so, se strings.Builder
			run.Stdout, run.Stderr = &so, &se
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- run.Wait() }()
			// Cut short once the first point is there whole.
			deadline := time.Now().Add(120 * time.Second)
			var err error
		wait:
			for {
				select {
				case err = <-done:
					t.Logf("the run ended before the cut: %v", err)
					break wait
				default:
				}
				if len(completeOn(c.dir)) > 0 {
					if c.server {
						e.s3.Kill()
					} else {
						run.Process.Signal(syscall.SIGKILL)
					}
					err = <-done
					break wait
				}
				if time.Now().After(deadline) {
					t.Fatal("no point arrived in 120 s")
				}
				time.Sleep(2 * time.Millisecond)
			}
			local := sha256sumCheck(t, bdir)
			slices.Sort(local)
			there := completeOn(c.dir)
			t.Logf("cut short (%v): the remote holds %d of %d points: %v", err, len(there), len(local), there)
			if c.server {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
					t.Fatalf("run with the server killed: %v\n%s", err, se.String())
				}
				b := parseBackup(t, so.String())
				var want []string
				for _, n := range local {
					if !slices.Contains(there, n) {
						want = append(want, n)
					}
				}
				got := slices.Clone(b.Remotes[0].Pending)
				slices.Sort(got)
				// The server may have stored the point in flight at the
				// kill without the run hearing so: pending may name that
				// one point too (claiming less than is there is safe),
				// never fewer than the remote lacks.
				var extra []string
				for _, n := range got {
					if !slices.Contains(want, n) {
						extra = append(extra, n)
					}
				}
				missing := slices.ContainsFunc(want, func(n string) bool { return !slices.Contains(got, n) })
				if b.Remotes[0].Error == "" || missing || len(extra) > 1 {
					t.Fatalf("pending %v, want every point the remote lacks %v (at most one more, the one in flight) (error %q)", got, want, b.Remotes[0].Error)
				}
				e.s3.Start(t)
			}
			allRestore(t, e, c.url, c.dir)

			// The next run completes the remote.
			change(5)
			b := parseBackup(t, e.run(t, nil, append(append(args, "--remote", c.url, "--json"), e.flags...)...).must(t).out)
			if b.Remotes[0].Error != "" {
				t.Fatalf("next run: %+v", b.Remotes[0])
			}
			local = sha256sumCheck(t, bdir)
			slices.Sort(local)
			if got := completeOn(c.dir); !slices.Equal(got, local) {
				t.Fatalf("after the next run the remote holds %v, here %v", got, local)
			}
			allRestore(t, e, c.url, c.dir)

			// The full lost on the remote (as old code could leave it):
			// list --remote names the orphans, and the next run sends the
			// full again.
			full := local[0]
			for _, s := range []string{"", ".sha256", ".json"} {
				if err := os.Remove(filepath.Join(c.dir, full+s)); err != nil {
					t.Fatal(err)
				}
			}
			l := e.run(t, nil, append([]string{"list", "--remote", c.url}, e.flags...)...).must(t)
			// Every increment noted, and the footer that says why.
			if strings.Count(l.out, "ORPHAN") != len(local)-1+1 || !strings.Contains(l.out, "needs "+full) {
				t.Fatalf("list --remote with the full gone:\n%s", l.out)
			}
			change(6)
			b = parseBackup(t, e.run(t, nil, append(append(args, "--remote", c.url, "--json"), e.flags...)...).must(t).out)
			if !slices.Contains(b.Remotes[0].Uploaded, full) {
				t.Fatalf("the next run sent %v, not the lost full %s", b.Remotes[0].Uploaded, full)
			}
			allRestore(t, e, c.url, c.dir)
		})
	}
}

// TestRemoteIncrementalUnprovenFull: a full that did not pass its proof
// is never built on and never leaves its increments on a remote
// without it. (a) A full damaged here (a flipped byte) under a chain no
// remote holds yet: the run hashes what the remote lacks before
// building, takes a new full ("damaged here"), sends it, and holds back
// the old increments (named, --json held_back); the damaged full is
// reported. (b) A full made with --no-verify: a verifying run takes a
// full rather than build on it. (c) The remote lost the full it held
// and the full here is damaged: the increment built on it is held back
// and the remote is not "ok" (exit 1); the next run takes a full that
// goes. After each run every point the remote holds restores from it.
// Old code built increments on both fulls and sent them without them.
func TestRemoteIncrementalUnprovenFull(t *testing.T) {
	e := newRemoteEnv(t)
	setup := func(t *testing.T, sub string) (url, rdir, src, bdir string, run func(remote bool, extra ...string) runResult) {
		rdir = filepath.Join(e.sshd.Dir, sub)
		os.Mkdir(rdir, 0o755)
		url = strings.TrimSuffix(e.sshd.URL(), "/") + "/" + sub
		dir := t.TempDir()
		src = filepath.Join(dir, "app.db")
		cli3(t, src, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT hex(randomblob(40)) FROM generate_series(1, 20000);")
		bdir = filepath.Join(dir, "backups")
		i := 0
		run = func(remote bool, extra ...string) runResult {
			t.Helper()
			i++
			cli3(t, src, fmt.Sprintf("UPDATE t SET v = 'run %d' WHERE id %% 1000 = %d;", i, i))
			args := append([]string{"--source", src, "--backup-dir", bdir, "--incremental", "--json"}, extra...)
			if remote {
				args = append(append(args, "--remote", url), e.flags...)
			}
			return e.run(t, nil, args...)
		}
		return
	}
	increments := func(names []string) (out []string) {
		for _, n := range names {
			if strings.HasSuffix(n, ".ltx") {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}

	t.Run("damaged", func(t *testing.T) {
		url, rdir, _, bdir, run := setup(t, "damaged")
		full := filepath.Base(parseBackup(t, run(false).must(t).out).Path)
		run(false).must(t)
		run(false).must(t)
		incs := increments(sha256sumCheck(t, bdir))
		flipByte(t, filepath.Join(bdir, full), 40000)
		r := run(true).must(t)
		b := parseBackup(t, r.out)
		if strings.HasSuffix(b.Path, ".ltx") || !strings.Contains(b.FullReason, full+" is damaged here") {
			t.Fatalf("built %s on a damaged full (full reason %q)", b.Path, b.FullReason)
		}
		held := slices.Clone(b.Remotes[0].HeldBack)
		slices.Sort(held)
		if !slices.Equal(held, incs) || len(b.Damaged) != 1 || filepath.Base(b.Damaged[0].Path) != full {
			t.Fatalf("held back %v (want %v), damaged %+v", held, incs, b.Damaged)
		}
		if got := completeOn(rdir); !slices.Equal(got, []string{filepath.Base(b.Path)}) {
			t.Fatalf("the remote holds %v, want only the new full", got)
		}
		if !strings.Contains(r.err, "WARNING: "+filepath.Join(bdir, full)) || !strings.Contains(r.err, ": 2 increments not sent: a point of their chain cannot go") {
			t.Fatalf("the damaged full and the increments held back are not reported:\n%s", r.err)
		}
		allRestore(t, e, url, rdir)
	})

	t.Run("not-verified", func(t *testing.T) {
		url, rdir, _, _, run := setup(t, "noverify")
		full := filepath.Base(parseBackup(t, run(false, "--no-verify").must(t).out).Path)
		b := parseBackup(t, run(true).must(t).out)
		if strings.HasSuffix(b.Path, ".ltx") || !strings.Contains(b.FullReason, full+" was not verified") {
			t.Fatalf("built %s on a full made with --no-verify (full reason %q)", b.Path, b.FullReason)
		}
		if got := completeOn(rdir); !slices.Equal(got, []string{filepath.Base(b.Path)}) {
			t.Fatalf("the remote holds %v, want only the new full", got)
		}
		allRestore(t, e, url, rdir)
	})

	t.Run("newest-held-back", func(t *testing.T) {
		url, rdir, _, bdir, run := setup(t, "newest")
		full := filepath.Base(parseBackup(t, run(true).must(t).out).Path)
		for _, s := range []string{"", ".sha256", ".json"} {
			if err := os.Remove(filepath.Join(rdir, full+s)); err != nil {
				t.Fatal(err)
			}
		}
		flipByte(t, filepath.Join(bdir, full), 40000)
		r := run(true)
		b := parseBackup(t, r.out)
		name := filepath.Base(b.Path)
		if r.code != 1 || !strings.Contains(b.Remotes[0].Error, name+" was not sent") || !slices.Equal(b.Remotes[0].HeldBack, []string{name}) {
			t.Fatalf("exit %d, remote %+v\n%s", r.code, b.Remotes[0], r.err)
		}
		if got := completeOn(rdir); len(got) != 0 {
			t.Fatalf("the remote holds %v", got)
		}
		b = parseBackup(t, run(true).must(t).out)
		if strings.HasSuffix(b.Path, ".ltx") || !strings.Contains(b.FullReason, "damaged here") {
			t.Fatalf("the next run built %s (full reason %q)", b.Path, b.FullReason)
		}
		if got := completeOn(rdir); !slices.Equal(got, []string{filepath.Base(b.Path)}) {
			t.Fatalf("the remote holds %v, want only the new full", got)
		}
		allRestore(t, e, url, rdir)
	})
}
