package systest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"sqlite-backup/internal/testserver"
)

// litestreamBin is the real Litestream CLI (scripts/install-deps.sh
// builds v0.5.18 into $(go env GOPATH)/bin).
func litestreamBin(t *testing.T) string {
	t.Helper()
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := testserver.Need(t, "litestream", filepath.Join(strings.TrimSpace(string(gopath)), "bin", "litestream"))
	out, _ := exec.Command(bin, "version").CombinedOutput()
	if !strings.Contains(string(out), "v0.5.18") {
		t.Fatalf("litestream version: %s (want v0.5.18: run scripts/install-deps.sh)", out)
	}
	return bin
}

// lsTarget is one database Litestream replicates, and where to.
type lsTarget struct {
	name    string
	db      string
	replica string // the YAML of its replica
	loc     string // the replica as our tool takes it
	files   string // the replica's files on this machine (ltx/ below it)
	refs    map[string]string
}

// lsConfig writes Litestream's config for the targets: L0 files kept an
// hour (so every TXID stays a point), level 1 every 2 s, a snapshot
// every 6 s.
func lsConfig(t *testing.T, dir string, ts []*lsTarget) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("l0-retention: 1h\nlevels:\n  - interval: 2s\nsnapshot:\n  interval: 6s\n  retention: 1h\ndbs:\n")
	for _, tg := range ts {
		fmt.Fprintf(&b, "  - path: %s\n    monitor-interval: 100ms\n    replica:\n%s", tg.db, tg.replica)
	}
	p := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// maxTXID is the newest TXID among the replica's level-0 files (in
// ltx/0/, or 0000/ where Litestream's S3 client keeps them).
func maxTXID(dir string) string {
	fs, _ := filepath.Glob(filepath.Join(dir, "ltx", "0", "*.ltx"))
	s3, _ := filepath.Glob(filepath.Join(dir, "0000", "*.ltx"))
	fs = append(fs, s3...)
	sort.Strings(fs)
	if len(fs) == 0 {
		return ""
	}
	b := filepath.Base(fs[len(fs)-1])
	return b[17:33]
}

// settle waits until the replica's newest TXID has not moved for a
// second, after it moved past from.
func settle(t *testing.T, dir, from string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, since := maxTXID(dir), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(150 * time.Millisecond)
		cur := maxTXID(dir)
		if cur != last {
			last, since = cur, time.Now()
			continue
		}
		if cur != "" && cur != from && time.Since(since) > time.Second {
			return cur
		}
	}
	var tree []string
	filepath.Walk(filepath.Dir(dir), func(p string, _ os.FileInfo, _ error) error { tree = append(tree, p); return nil })
	t.Fatalf("replica %s did not settle (newest TXID %q, before the step %q); there: %.3000s", dir, last, from, strings.Join(tree, "\n"))
	return ""
}

// lsEnv is the environment for Litestream: its S3 settings come from its
// config, and an AWS_CA_BUNDLE in ours fails its S3 client at start
// ("unable to add custom RootCAs").
func lsEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// startLitestream runs `litestream replicate` until the test stops it
// (SIGTERM, as its service manager would).
func startLitestream(t *testing.T, bin, cfg string, env []string) func() {
	t.Helper()
	cmd := exec.Command(bin, "replicate", "-config", cfg)
	cmd.Env = env
	logf, err := os.Create(cfg + ".log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(cfg + ".log")
			t.Logf("litestream log:\n%.6000s", b)
		}
	})
	return stop
}

// lsRestore runs `litestream restore` of the database's replica (as its
// config names it) to out, with the full integrity check on.
func lsRestore(t *testing.T, bin, cfg string, env []string, db, out string, args ...string) runResult {
	t.Helper()
	argv := append([]string{"restore", "-config", cfg, "-o", out, "-integrity-check", "full"}, args...)
	cmd := exec.Command(bin, append(argv, db)...)
	cmd.Env = env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{so.String(), se.String(), code}
}

type lsListJSON struct {
	Kind   string `json:"kind"`
	Points []struct {
		TXID    string    `json:"txid"`
		Created time.Time `json:"created"`
	} `json:"points"`
	Newest *struct {
		TXID string `json:"txid"`
	} `json:"newest"`
	Gaps        []any    `json:"gaps"`
	Unreachable []string `json:"unreachable"`
}

// samePages fails unless a (our restore) and b (Litestream's) hold the
// same pages: the same bytes but for what switching the journal mode
// rewrites in the header (our restore to a new file leaves it in
// rollback mode, as every restore to a new path here does; Litestream's
// keeps WAL): bytes 18-19 (the mode), 24-27 (the change counter), 92-99
// (the version-valid-for number and SQLite's version).
func samePages(t *testing.T, what, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) || len(x) < 100 {
		t.Fatalf("%s: %d bytes against %d", what, len(x), len(y))
	}
	ps := int(x[16])<<8 | int(x[17])
	if ps == 1 {
		ps = 65536
	}
	for i := range x {
		if x[i] != y[i] && i != 18 && i != 19 && (i < 24 || i > 27) && (i < 92 || i > 99) {
			t.Fatalf("%s: first difference at byte %d (page %d of %d bytes)", what, i, i/ps+1, ps)
		}
	}
}

// lsStep is one random change of the database, through the C CLI while
// Litestream replicates it.
func lsStep(t *testing.T, rng *rand.Rand, db string, round int) string {
	t.Helper()
	switch rng.IntN(6) {
	case 0:
		return fmt.Sprintf("INSERT INTO t(v) SELECT hex(randomblob(%d)) FROM generate_series(1, %d);", 20+rng.IntN(200), 50+rng.IntN(2000))
	case 1:
		return fmt.Sprintf("UPDATE t SET v = 'round %d ' || hex(randomblob(30)) WHERE id %% %d = %d;", round, 3+rng.IntN(20), rng.IntN(3))
	case 2:
		return fmt.Sprintf("DELETE FROM t WHERE id %% %d = 0;", 2+rng.IntN(5))
	case 3:
		return fmt.Sprintf("INSERT INTO t(v) VALUES ('round %d'); PRAGMA wal_checkpoint(%s);", round, []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}[rng.IntN(4)])
	case 4:
		return fmt.Sprintf("DELETE FROM t WHERE id %% 3 = 1; VACUUM; INSERT INTO t(v) VALUES ('round %d');", round)
	default:
		return fmt.Sprintf("CREATE TABLE IF NOT EXISTS u%d(a, b); INSERT INTO u%d SELECT value, hex(randomblob(100)) FROM generate_series(1, %d);", round%3, round%3, 100+rng.IntN(500))
	}
}

// TestLitestreamDifferential: the real Litestream v0.5.18 replicates
// three live databases under random writes (inserts, updates, deletes,
// checkpoints of every kind, VACUUM, a page size change) to a
// directory, to a real sshd and to a real versitygw. After every step
// the C CLI's .backup of the database is the reference of the TXID the
// replica then ends at. Our restore of every recorded point (--txid)
// equals its reference (sqldiff silent, integrity_check ok); for every
// restore point list shows, our restore and `litestream restore` of the
// same point are the same bytes; verify and restore without a point give
// the newest, and --at the same point as Litestream's -timestamp.
func TestLitestreamDifferential(t *testing.T) {
	bin := litestreamBin(t)
	testserver.Need(t, "sqldiff")
	e := newRemoteEnv(t)
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	local := &lsTarget{name: "dir", db: filepath.Join(dir, "local.db"), loc: filepath.Join(dir, "replica")}
	local.replica = fmt.Sprintf("      type: file\n      path: %s\n      sync-interval: 200ms\n", local.loc)
	local.files = local.loc
	sftpDir := filepath.Join(e.sshd.Dir, "ls")
	os.Mkdir(sftpDir, 0o700)
	sftp := &lsTarget{name: "sftp", db: filepath.Join(dir, "sftp.db"), loc: strings.TrimSuffix(e.sshd.URL(), "/") + "/ls", files: sftpDir}
	sftp.replica = fmt.Sprintf("      type: sftp\n      host: 127.0.0.1:%d\n      user: %s\n      key-path: %s\n      path: %s\n      sync-interval: 200ms\n",
		e.sshd.Port, e.sshd.User, e.sshd.Key, sftpDir)
	s3 := &lsTarget{name: "s3", db: filepath.Join(dir, "s3.db"), loc: "s3://backups/ls", files: filepath.Join(e.s3.Dir, "backups", "ls")}
	s3.replica = fmt.Sprintf("      type: s3\n      bucket: backups\n      path: ls\n      endpoint: %s\n      region: us-east-1\n      force-path-style: true\n      access-key-id: %s\n      secret-access-key: %s\n      sync-interval: 200ms\n",
		e.s3.Endpoint(), e.s3.Access, e.s3.Secret)
	targets := []*lsTarget{local, sftp, s3}
	for i, tg := range targets {
		tg.refs = map[string]string{}
		// A page size each: Litestream cannot follow a change of it (see
		// the end of the test).
		cli3(t, tg.db, fmt.Sprintf("PRAGMA page_size=%d; PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT hex(randomblob(60)) FROM generate_series(1, 3000);", []int{4096, 1024, 16384}[i]))
	}
	cfg := lsConfig(t, dir, targets)
	stop := startLitestream(t, bin, cfg, lsEnv())

	rounds := 10
	from := map[string]string{}
	record := func(tg *lsTarget, txid string) {
		for {
			ref := filepath.Join(dir, fmt.Sprintf("%s-ref-%s.db", tg.name, txid))
			cli3(t, tg.db, ".backup "+ref)
			// Litestream writes to the database itself (_litestream_seq):
			// a write of its own between the settle and the copy makes the
			// copy that of the TXID after. The replica then moves on within
			// its sync interval; the copy is taken again for that TXID.
			next := settle(t, tg.files, "")
			if next == txid {
				from[tg.name] = txid
				tg.refs[txid] = ref
				return
			}
			t.Logf("%s: the replica moved from TXID %s to %s while the reference was taken; again", tg.name, txid, next)
			txid = next
		}
	}
	for _, tg := range targets {
		record(tg, settle(t, tg.files, ""))
	}
	for round := range rounds {
		for _, tg := range targets {
			// Each step ends with a row, so that it always makes a TXID.
			cli3(t, tg.db, "PRAGMA busy_timeout=10000; "+lsStep(t, rng, tg.db, round)+fmt.Sprintf(" INSERT INTO t(v) VALUES ('round %d');", round))
		}
		for _, tg := range targets {
			record(tg, settle(t, tg.files, from[tg.name]))
		}
	}
	// Let a snapshot and a level-1 compaction happen after the last
	// change, then stop Litestream: nothing moves while we compare.
	time.Sleep(7 * time.Second)
	stop()

	out := t.TempDir()
	for _, tg := range targets {
		var l lsListJSON
		oneResult(t, e.run(t, nil, append([]string{"list", tg.loc, "--json"}, e.flags...)...).must(t).out, &l)
		if l.Kind != "litestream" || l.Newest == nil || len(l.Points) < len(tg.refs) || len(l.Gaps) > 0 {
			t.Fatalf("%s: list: %+v", tg.name, l)
		}
		lv, _ := os.ReadDir(filepath.Join(tg.files, "ltx"))
		if tg == s3 {
			lv, _ = os.ReadDir(tg.files)
		}
		var levels []string
		for _, d := range lv {
			levels = append(levels, d.Name())
		}
		t.Logf("%s: %d restore points, %d references, levels %v", tg.name, len(l.Points), len(tg.refs), levels)
		if len(levels) < 3 {
			t.Fatalf("%s: levels %v: want level 0, a compaction level and snapshots", tg.name, levels)
		}
		// Every recorded point equals its reference.
		for txid, ref := range tg.refs {
			ours := filepath.Join(out, fmt.Sprintf("%s-ours-%s.db", tg.name, txid))
			r := e.run(t, nil, append([]string{"restore", tg.loc, "--txid", txid, "--to", ours}, e.flags...)...).must(t)
			if !strings.Contains(r.out, "as a Litestream replica: point TXID "+txid) {
				t.Fatalf("%s: restore --txid %s:\n%s", tg.name, txid, r.out)
			}
			samePoint(t, fmt.Sprintf("%s TXID %s", tg.name, txid), ref, ours)
		}
		// Every restore point: ours and Litestream's, the same bytes.
		for _, p := range l.Points {
			ours := filepath.Join(out, fmt.Sprintf("%s-p-ours-%s.db", tg.name, p.TXID))
			theirs := filepath.Join(out, fmt.Sprintf("%s-p-ls-%s.db", tg.name, p.TXID))
			e.run(t, nil, append([]string{"restore", tg.loc, "--txid", p.TXID, "--to", ours}, e.flags...)...).must(t)
			lsRestore(t, bin, cfg, lsEnv(), tg.db, theirs, "-txid", p.TXID).must(t)
			samePages(t, fmt.Sprintf("%s point %s: ours vs litestream restore", tg.name, p.TXID), ours, theirs)
		}
		// The newest point: verify, and restore without a point, equal
		// to the database now and to Litestream's restore.
		v := e.run(t, nil, append([]string{"verify", tg.loc}, e.flags...)...).must(t)
		if !strings.Contains(v.out, ": ok (read as a Litestream replica: point TXID "+l.Newest.TXID) {
			t.Fatalf("%s: verify:\n%s", tg.name, v.out)
		}
		newest := filepath.Join(out, tg.name+"-newest.db")
		e.run(t, nil, append([]string{"restore", tg.loc, "--to", newest}, e.flags...)...).must(t)
		now := filepath.Join(out, tg.name+"-now.db")
		cli3(t, tg.db, ".backup "+now)
		samePoint(t, tg.name+" newest", now, newest)
		theirs := filepath.Join(out, tg.name+"-ls-newest.db")
		lsRestore(t, bin, cfg, lsEnv(), tg.db, theirs).must(t)
		samePages(t, tg.name+" newest: ours vs litestream restore", newest, theirs)
		// --at: a time between two points, ours and Litestream's.
		mid := l.Points[len(l.Points)/2]
		at := mid.Created.Add(time.Millisecond).UTC().Format(time.RFC3339Nano)
		oursAt := filepath.Join(out, tg.name+"-at-ours.db")
		theirsAt := filepath.Join(out, tg.name+"-at-ls.db")
		e.run(t, nil, append([]string{"restore", tg.loc, "--at", at, "--to", oursAt}, e.flags...)...).must(t)
		lsRestore(t, bin, cfg, lsEnv(), tg.db, theirsAt, "-timestamp", at).must(t)
		samePages(t, fmt.Sprintf("%s --at %s: ours vs litestream restore -timestamp", tg.name, at), oursAt, theirsAt)
	}

	// A page size change: Litestream v0.5.18, started again on the
	// changed database, cannot follow it (every sync fails, with
	// "unaligned wal offset … for page size …" or, depending on where
	// the WAL then ends, "cannot verify wal state: prev WAL offset is
	// less than the header size") and the replica stays at the point
	// before. We read the replica as it is: its newest point is still
	// the database before the change, and says so.
	newestBefore := maxTXID(local.files)
	// Litestream stopped with the replica at the database as it is (the
	// newest point checked above), which may be a TXID of its own
	// (_litestream_seq) after the last recorded one: this copy is the
	// reference.
	before := filepath.Join(out, "before-ps.db")
	cli3(t, local.db, ".backup "+before)
	cli3(t, local.db, "PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=WAL; INSERT INTO t(v) VALUES ('after the page size change');")
	stop = startLitestream(t, bin, cfg, lsEnv())
	time.Sleep(4 * time.Second)
	stop()
	logb, _ := os.ReadFile(cfg + ".log")
	refused := strings.Contains(string(logb), "unaligned wal offset") || strings.Contains(string(logb), "cannot verify wal state")
	if m := maxTXID(local.files); m != newestBefore || !refused {
		t.Logf("litestream after a page size change: newest TXID %s (was %s); log:\n%.3000s", m, newestBefore, logb)
		t.Fatalf("Litestream now follows a page size change: test our restore across it and update docs/LITESTREAM.md")
	}
	after := filepath.Join(out, "after-ps.db")
	r := e.run(t, nil, "restore", local.loc, "--to", after).must(t)
	if !strings.Contains(r.out, "point TXID "+newestBefore) {
		t.Fatalf("restore after the page size change:\n%s", r.out)
	}
	samePoint(t, "the newest point after a page size change Litestream did not follow", before, after)
}

// TestLitestreamDamage: a replica Litestream wrote, damaged four ways
// (a flipped byte in a page of a level-0 file, a missing snapshot, a
// TXID gap from a level-0 file removed, a truncated snapshot): our
// verify and restore refuse with exit 3 naming the file at fault and
// leave no target; what `litestream restore -integrity-check full`
// does with the same damage is logged (docs/LITESTREAM.md records it).
func TestLitestreamDamage(t *testing.T) {
	bin := litestreamBin(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	rep := filepath.Join(dir, "replica")
	cli3(t, db, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT hex(randomblob(60)) FROM generate_series(1, 5000);")
	tg := &lsTarget{name: "dir", db: db, loc: rep, files: rep, replica: fmt.Sprintf("      type: file\n      path: %s\n      sync-interval: 200ms\n", rep)}
	cfg := lsConfig(t, dir, []*lsTarget{tg})
	env := lsEnv()
	stop := startLitestream(t, bin, cfg, env)
	last := settle(t, rep, "")
	for i := range 4 {
		cli3(t, db, fmt.Sprintf("UPDATE t SET v = 'step %d ' || hex(randomblob(50)) WHERE id %% 7 = %d; INSERT INTO t(v) SELECT hex(randomblob(60)) FROM generate_series(1, 200);", i, i))
		last = settle(t, rep, last)
	}
	time.Sleep(7 * time.Second) // a snapshot of the final state too
	stop()
	snaps, _ := filepath.Glob(filepath.Join(rep, "ltx", "9", "*.ltx"))
	l0, _ := filepath.Glob(filepath.Join(rep, "ltx", "0", "*.ltx"))
	sort.Strings(snaps)
	sort.Strings(l0)
	if len(snaps) < 2 || len(l0) < 4 {
		t.Fatalf("replica: snapshots %v, level 0 %v", snaps, l0)
	}
	rel := func(p string) string { r, _ := filepath.Rel(rep, p); return r }
	// Each case damages a fresh copy and names the point to restore:
	// "" the newest, or the TXID that needs the damaged file.
	type dcase struct {
		name   string
		damage func(r string) (file, txid string)
	}
	firstSnap := rel(snaps[0])
	midL0 := rel(l0[len(l0)/2])
	// Removing a level-0 file leaves a gap only when nothing else
	// bridges it: the later snapshots and the compaction levels go too.
	unbridged := func(r string) string {
		os.Remove(filepath.Join(r, midL0))
		for _, s := range snaps[1:] {
			os.Remove(filepath.Join(r, rel(s)))
		}
		for l := 1; l < 9; l++ {
			os.RemoveAll(filepath.Join(r, "ltx", fmt.Sprint(l)))
		}
		return rel(l0[len(l0)/2+1])
	}
	if txidOf(firstSnap) >= txidOf(midL0) {
		t.Fatalf("the first snapshot %s is not before %s", firstSnap, midL0)
	}
	cases := []dcase{
		{"flipped byte", func(r string) (string, string) {
			// The first snapshot, all the point at its TXID reads.
			p := filepath.Join(r, firstSnap)
			fi, _ := os.Stat(p)
			flipByte(t, p, fi.Size()/2)
			return firstSnap, txidOf(firstSnap)
		}},
		{"missing LTX file", func(r string) (string, string) {
			// A point after it: its restore needs the file.
			return unbridged(r), txidOf(rel(l0[len(l0)-1]))
		}},
		{"TXID gap", func(r string) (string, string) {
			// The newest point: the files stop short of the newest TXID.
			return unbridged(r), ""
		}},
		{"truncated snapshot", func(r string) (string, string) {
			p := filepath.Join(r, firstSnap)
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()*2/3)
			return firstSnap, txidOf(firstSnap)
		}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			r := filepath.Join(t.TempDir(), "replica")
			if out, err := exec.Command("cp", "-a", rep, r).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			file, txid := c.damage(r)
			args := []string{}
			if txid != "" {
				args = []string{"--txid", txid}
			}
			v := runBin(t, runOpts{}, append([]string{"verify", r}, args...)...)
			if v.code != 3 || !strings.Contains(v.stdout, file) || !strings.Contains(v.stdout, "FAILED (read as a Litestream replica)") {
				t.Fatalf("verify of a replica with %s: exit %d, want 3 naming %s\n%s%s", c.name, v.code, file, v.stdout, v.stderr)
			}
			to := filepath.Join(t.TempDir(), "restored.db")
			rr := runBin(t, runOpts{}, append([]string{"restore", r, "--to", to}, args...)...)
			if rr.code != 3 || !strings.Contains(rr.stderr, file) {
				t.Fatalf("restore of a replica with %s: exit %d, want 3 naming %s\n%s%s", c.name, rr.code, file, rr.stdout, rr.stderr)
			}
			if _, err := os.Stat(to); err == nil {
				t.Fatal("a refused restore left the target")
			}
			// Litestream's restore of the same point from the same files.
			lcfg := filepath.Join(t.TempDir(), "ls.yml")
			os.WriteFile(lcfg, []byte(fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      type: file\n      path: %s\n", db, r)), 0o600)
			lto := filepath.Join(t.TempDir(), "ls.db")
			largs := []string{}
			if txid != "" {
				largs = []string{"-txid", txid}
			}
			l := lsRestore(t, bin, lcfg, env, db, lto, largs...)
			what := fmt.Sprintf("exit %d", l.code)
			if _, err := os.Stat(lto); err == nil {
				what += ", wrote " + lto + ": integrity_check " + strings.TrimSpace(cli3(t, lto, "PRAGMA integrity_check"))
			}
			msg := strings.TrimSpace(l.err + l.out)
			if i := strings.LastIndex(msg, "\n"); i >= 0 {
				msg = msg[i+1:]
			}
			t.Logf("DAMAGE %s: ours: exit 3 naming %s; litestream restore -integrity-check full: %s: %.300s", c.name, file, what, msg)
		})
	}
}

// txidOf is the max TXID of an LTX file's name.
func txidOf(name string) string {
	b := filepath.Base(name)
	return b[17:33]
}
