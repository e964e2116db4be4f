package systest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listedPoint is what the layout test reads of a point in list --json.
type listedPoint struct {
	Path  string `json:"path"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Chain *struct {
		Kind string `json:"kind"`
		TXID uint64 `json:"litestream_txid"`
	} `json:"chain"`
}

// listPoints is every point list --json shows for src in dir.
func listPoints(t *testing.T, src, dir string) []listedPoint {
	t.Helper()
	r := runBin(t, runOpts{}, "list", "--source", src, "--backup-dir", dir, "--json")
	if r.code != 0 {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Results []listedPoint `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	return rep.Results
}

// TestLitestreamLayoutDifferential: the real binary takes --incremental
// backups with --layout litestream of a database a real sqlite3 process
// holds open and writes (inserts, updates, deletes, schema changes,
// VACUUM, page size changes, checkpoints of every kind), with the page
// index now and then lost, now and then a run killed with SIGKILL, and
// retention run with random --keep rules. Every point list shows is
// restored twice: by our restore POINT, and by the real `litestream
// restore -txid N -integrity-check full` from the replica directory
// beside the backups. The two files must be byte for byte the same, and
// sqldiff must find them equal to the C CLI's .backup of the source
// taken when the point was written; at the end the replica must hold
// exactly one file per point (nothing pruned left behind, nothing a
// kept point needs missing). SQLITE_BACKUP_STRESS=full runs 120 rounds
// (LS_ROUNDS to choose).
func TestLitestreamLayoutDifferential(t *testing.T) {
	ls := litestreamBin(t)
	if _, err := exec.LookPath("sqldiff"); err != nil {
		t.Skip("sqldiff not installed (scripts/install-deps.sh)")
	}
	rounds := iterations(16, 120)
	if n, err := strconv.Atoi(os.Getenv("LS_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("LS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (LS_SEED to repeat), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 31))
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	out := filepath.Join(dir, "out")
	refs := filepath.Join(dir, "refs")
	for _, d := range []string{out, refs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	replica := filepath.Join(out, "app.db.litestream")
	pageSize := []int{1024, 4096, 8192}[rng.IntN(3)]
	cli3(t, src, fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);
CREATE INDEX t_k ON t(k);
INSERT INTO t(k, v) SELECT abs(random()) %% 1000, randomblob(50 + abs(random()) %% 300) FROM generate_series(1, 2000);`, pageSize))
	app := startCLI(t, src)
	app.exec(t, "PRAGMA busy_timeout=10000")
	app.exec(t, "PRAGMA wal_autocheckpoint=0")
	index := filepath.Join(out, "app.db.pageindex")
	fullEvery := 3 + rng.IntN(6)
	ref := map[string]string{} // point name: the C CLI's .backup when it was written
	compare := func(p listedPoint) {
		t.Helper()
		if p.Chain == nil || p.Chain.TXID == 0 {
			t.Fatalf("%s: listed without a Litestream TXID: %+v", p.Name, p)
		}
		ours := filepath.Join(dir, "ours.db")
		theirs := filepath.Join(dir, "litestream.db")
		for _, f := range []string{ours, theirs, theirs + "-txid"} {
			os.Remove(f)
		}
		r := runBin(t, runOpts{}, "restore", p.Path, "--to", ours)
		if r.code != 0 {
			t.Fatalf("restore %s: exit %d\n%s%s", p.Name, r.code, r.stdout, r.stderr)
		}
		txid := fmt.Sprintf("%016x", p.Chain.TXID)
		cmd := exec.Command(ls, "restore", "-txid", txid, "-integrity-check", "full", "-o", theirs, "file://"+replica)
		cmd.WaitDelay = time.Second
		t.Logf("litestream restore -txid %s (%s)", txid, p.Name)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("litestream restore -txid %s of %s: %v\n%s", txid, p.Name, err, b)
		}
		a, err := os.ReadFile(ours)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(theirs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s (TXID %s): litestream restore gives %d bytes, our restore %d, and they differ", p.Name, txid, len(b), len(a))
		}
		if rf, ok := ref[p.Name]; ok {
			samePoint(t, p.Name+" by litestream restore", rf, theirs)
		} else if got := strings.TrimSpace(cli3(t, theirs, "PRAGMA integrity_check")); got != "ok" {
			t.Fatalf("%s by litestream restore: integrity_check: %s", p.Name, got)
		}
		for _, f := range []string{ours, theirs, theirs + "-txid"} {
			os.Remove(f)
		}
	}
	compared := map[string]bool{}
	stats := map[string]int{}
	for i := range rounds {
		for range 1 + rng.IntN(3) {
			switch op := rng.IntN(14); op {
			default:
				randomChange(t, app, rng, op, &pageSize, stats)
			case 13:
				os.Remove(index)
			}
		}
		args := []string{"--source", src, "--backup-dir", out, "--incremental", "--layout", "litestream",
			"--full-every", strconv.Itoa(fullEvery), "--check-every", "24h", "--keep", "0"}
		if rng.IntN(4) == 0 {
			args = append(args, "--compress", []string{"zstd", "gzip"}[rng.IntN(2)])
		}
		if i%5 == 3 {
			// Killed anywhere, also between a point and its replica
			// file: the next run writes what is missing.
			cmd := command(t, runOpts{}, "sqlite-backup", args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if cmd.ProcessState.Success() {
				stats["killed after it finished"]++
			} else {
				stats["killed"]++
			}
			continue
		}
		// A run that hangs (it did once: a pipe read by its own writer)
		// gets SIGQUIT, so that its goroutines' stacks say where.
		cmd := command(t, runOpts{}, "sqlite-backup", append(args, "--json")...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hung := time.AfterFunc(2*time.Minute, func() { cmd.Process.Signal(syscall.SIGQUIT) })
		cmd.Wait()
		if !hung.Stop() {
			t.Fatalf("round %d: the run hung:\n%s%s", i, so.String(), se.String())
		}
		r := result{stdout: so.String(), stderr: se.String(), code: cmd.ProcessState.ExitCode()}
		if r.code != 0 {
			t.Fatalf("round %d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
		var b incrBackupJSON
		oneResult(t, r.stdout, &b)
		stats[b.Kind]++
		ref[filepath.Base(b.Path)] = filepath.Join(refs, fmt.Sprintf("%03d.db", i))
		cli3(t, src, ".backup "+ref[filepath.Base(b.Path)])
		for _, d := range []string{"ltx/0", "ltx/9"} {
			if tmp := tempsIn(t, filepath.Join(replica, d)); len(tmp) > 0 {
				t.Fatalf("round %d: temp files left in the replica: %v", i, tmp)
			}
		}
		for _, p := range listPoints(t, src, out) {
			if !compared[p.Name] {
				compare(p)
				compared[p.Name] = true
			}
		}
		if rng.IntN(5) == 0 {
			keep := 1 + rng.IntN(5)
			pr := runBin(t, runOpts{}, "prune", "--source", src, "--backup-dir", out, "--keep", strconv.Itoa(keep))
			if pr.code != 0 {
				t.Fatalf("round %d: prune --keep %d: exit %d\n%s%s", i, keep, pr.code, pr.stdout, pr.stderr)
			}
			stats["prunes"]++
		}
	}
	// One more run, so that a killed last round is repaired, then every
	// point left, again, after all that followed it.
	r := runBin(t, runOpts{}, "--source", src, "--backup-dir", out, "--incremental", "--layout", "litestream", "--full-every", strconv.Itoa(fullEvery), "--keep", "0")
	if r.code != 0 {
		t.Fatalf("last run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	pts := listPoints(t, src, out)
	var want []string
	for _, p := range pts {
		compare(p)
		stats["compared at the end"]++
		f := fmt.Sprintf("ltx/0/%016x-%016x.ltx", p.Chain.TXID, p.Chain.TXID)
		if p.Chain.Kind == "full" {
			f = fmt.Sprintf("ltx/9/%016x-%016x.ltx", 1, p.Chain.TXID)
		}
		want = append(want, f)
	}
	var have []string
	for _, d := range []string{"ltx/0", "ltx/9"} {
		for _, n := range listDir(t, filepath.Join(replica, d)) {
			have = append(have, d+"/"+n)
		}
	}
	sort.Strings(want)
	sort.Strings(have)
	if strings.Join(want, " ") != strings.Join(have, " ") {
		t.Fatalf("the replica holds\n  %v\nthe points listed need\n  %v", have, want)
	}
	t.Logf("page size %d at the end, a full every %d: %v", pageSize, fullEvery, stats)
	if stats["increment"] == 0 || stats["full"] == 0 {
		t.Fatalf("no mix of fulls and increments: %v", stats)
	}
}

// TestRemoteLitestreamLayout: with --layout litestream and two remotes,
// a real sshd and a real versitygw, each run sends the replica's new
// files after the points, in the names Litestream's SFTP and S3 clients
// read (<dir>/<db>.litestream/ltx/<level>/, <prefix>/<db>.litestream/
// <level as 4 hex digits>/); the real `litestream restore -txid N
// -integrity-check full` from each server gives, for every point listed,
// the file our restore gives; a pruned point's files leave both servers
// at the next run, and the servers then hold exactly the local replica.
func TestRemoteLitestreamLayout(t *testing.T) {
	ls := litestreamBin(t)
	e := newRemoteEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	cli3(t, src, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT hex(randomblob(40)) FROM generate_series(1, 5000);")
	bdir := filepath.Join(dir, "backups")
	os.Mkdir(bdir, 0o700)
	backup := func(keep string) string {
		t.Helper()
		args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL,
			"--incremental", "--layout", "litestream", "--full-every", "3", "--keep", keep}, e.flags...)
		return e.run(t, nil, args...).must(t).out
	}
	for i := range 5 {
		cli3(t, src, fmt.Sprintf("UPDATE t SET v = 'run %d' WHERE id %% 300 = %d; INSERT INTO t(v) VALUES ('row of run %d');", i, i, i))
		out := backup("0")
		if !strings.Contains(out, "litestream replica: uploaded 1, removed 0 files") {
			t.Fatalf("run %d: each remote should take the new replica file:\n%s", i, out)
		}
	}
	// Litestream's own clients, configured as a Litestream user would
	// (one replica a database in v0.5: one config for each server).
	cfgs := map[string]string{
		"sftp": fmt.Sprintf("      - type: sftp\n        host: 127.0.0.1:%d\n        user: %s\n        key-path: %s\n        path: %s\n",
			e.sshd.Port, e.sshd.User, e.sshd.Key, filepath.Join(e.sshd.Dir, "app.db.litestream")),
		"s3": fmt.Sprintf("      - type: s3\n        bucket: backups\n        path: host1/app.db.litestream\n        endpoint: %s\n        region: us-east-1\n        force-path-style: true\n",
			e.s3.Endpoint()),
	}
	for rep, y := range cfgs {
		p := filepath.Join(dir, "litestream-"+rep+".yml")
		if err := os.WriteFile(p, []byte(fmt.Sprintf("dbs:\n  - path: %s\n    replicas:\n%s", src, y)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgs[rep] = p
	}
	check := func() {
		t.Helper()
		pts := listPoints(t, src, bdir)
		for _, p := range pts {
			ours := filepath.Join(dir, "ours.db")
			os.Remove(ours)
			if r := runBin(t, runOpts{}, "restore", p.Path, "--to", ours); r.code != 0 {
				t.Fatalf("restore %s: exit %d\n%s%s", p.Name, r.code, r.stdout, r.stderr)
			}
			a, err := os.ReadFile(ours)
			if err != nil {
				t.Fatal(err)
			}
			for _, rep := range []string{"sftp", "s3"} {
				theirs := filepath.Join(dir, "litestream-"+rep+".db")
				os.Remove(theirs)
				os.Remove(theirs + "-txid")
				txid := fmt.Sprintf("%016x", p.Chain.TXID)
				cmd := exec.Command(ls, "restore", "-config", cfgs[rep], "-txid", txid, "-integrity-check", "full", "-o", theirs, src)
				// Litestream v0.5.18's S3 client fails whenever
				// AWS_CA_BUNDLE is set ("unable to add custom RootCAs
				// HTTPClient"); versitygw here speaks plain HTTP.
				for _, kv := range e.env {
					if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
						cmd.Env = append(cmd.Env, kv)
					}
				}
				cmd.WaitDelay = time.Second
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("litestream restore -replica %s -txid %s (%s): %v\n%s", rep, txid, p.Name, err, b)
				}
				b, err := os.ReadFile(theirs)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a, b) {
					t.Fatalf("%s from %s (TXID %s): litestream restore gives %d bytes, our restore %d, and they differ", p.Name, rep, txid, len(b), len(a))
				}
			}
		}
	}
	check()
	// --keep 1: the newest point and its full stay, here and there; the
	// replica files of the points pruned leave the servers at the next
	// run (this run sends before it prunes).
	backup("1")
	cli3(t, src, "INSERT INTO t(v) VALUES ('last');")
	backup("1")
	local, err := chainReplicaFiles(filepath.Join(bdir, "app.db.litestream"))
	if err != nil {
		t.Fatal(err)
	}
	sftpFiles, _ := chainReplicaFiles(filepath.Join(e.sshd.Dir, "app.db.litestream"))
	if strings.Join(sftpFiles, " ") != strings.Join(local, " ") {
		t.Fatalf("sshd holds %v, the local replica %v", sftpFiles, local)
	}
	var s3Files []string
	for _, lv := range []string{"0000", "0009"} {
		for _, n := range listDir(t, filepath.Join(e.s3Dir, "app.db.litestream", lv)) {
			if strings.HasSuffix(n, ".ltx") {
				l := "0"
				if lv == "0009" {
					l = "9"
				}
				s3Files = append(s3Files, "ltx/"+l+"/"+n)
			}
		}
	}
	sort.Strings(s3Files)
	if strings.Join(s3Files, " ") != strings.Join(local, " ") {
		t.Fatalf("versitygw holds %v, the local replica %v", s3Files, local)
	}
	check()

	// The newest point removed by hand (the page index then is not its
	// parent's: the next run is a full): no later point takes its TXID,
	// and its file leaves the replica here and there.
	pts := listPoints(t, src, bdir)
	if pts[0].Kind != "increment" {
		t.Fatalf("newest point %s is a %s", pts[0].Name, pts[0].Kind)
	}
	for _, suffix := range []string{"", ".json", ".sha256"} {
		if err := os.Remove(pts[0].Path + suffix); err != nil {
			t.Fatal(err)
		}
	}
	cli3(t, src, "UPDATE t SET v = 'again' WHERE id % 50 = 7;")
	backup("1")
	if got := listPoints(t, src, bdir)[0]; got.Chain.TXID <= pts[0].Chain.TXID {
		t.Fatalf("the new point has TXID %d, the removed one had %d", got.Chain.TXID, pts[0].Chain.TXID)
	}
	backup("1") // the remotes lose it at the run after
	gone := fmt.Sprintf("%016x-%016x.ltx", pts[0].Chain.TXID, pts[0].Chain.TXID)
	for _, d := range []string{filepath.Join(bdir, "app.db.litestream", "ltx", "0"), filepath.Join(e.sshd.Dir, "app.db.litestream", "ltx", "0"), filepath.Join(e.s3Dir, "app.db.litestream", "0000")} {
		if _, err := os.Stat(filepath.Join(d, gone)); err == nil {
			t.Fatalf("%s is still in %s", gone, d)
		}
	}
	check()

	// A local replica that cannot be written fails the run, but the
	// point it published still goes to both servers.
	rdir := filepath.Join(bdir, "app.db.litestream")
	if err := os.Rename(rdir, rdir+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rdir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli3(t, src, "INSERT INTO t(v) VALUES ('replica down');")
	args := append([]string{"--source", src, "--backup-dir", bdir, "--remote", e.sshd.URL(), "--remote", e.s3URL,
		"--incremental", "--layout", "litestream", "--keep", "0"}, e.flags...)
	r := e.run(t, nil, args...)
	if r.code == 0 || !strings.Contains(r.err, "its Litestream replica was not written") {
		t.Fatalf("a replica that cannot be written: exit %d\n%s%s", r.code, r.out, r.err)
	}
	newest := listPoints(t, src, bdir)[0].Name
	for _, d := range []string{e.sshd.Dir, e.s3Dir} {
		if !slices.Contains(sha256sumCheck(t, d), newest) {
			t.Fatalf("%s lacks %s, published while the replica was down", d, newest)
		}
	}
	os.Remove(rdir)
	if err := os.Rename(rdir+".aside", rdir); err != nil {
		t.Fatal(err)
	}
	backup("0")
	check()
}

// chainReplicaFiles lists ltx/0 and ltx/9 of a replica directory.
func chainReplicaFiles(rdir string) ([]string, error) {
	var out []string
	for _, lv := range []string{"0", "9"} {
		es, err := os.ReadDir(filepath.Join(rdir, "ltx", lv))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range es {
			if strings.HasSuffix(e.Name(), ".ltx") && e.Type().IsRegular() {
				out = append(out, "ltx/"+lv+"/"+e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
