package systest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exec runs statements in the session and waits until they are done,
// whatever they print.
func (s *cliSession) exec(t *testing.T, sql string) {
	t.Helper()
	mark := fmt.Sprintf("done-%d", rand.Int64())
	if _, err := io.WriteString(s.in, sql+";\nSELECT '"+mark+"';\n"); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("sqlite3 session: %q: %v", sql, err)
		}
		if strings.TrimSpace(line) == mark {
			return
		}
	}
}

// incrBackupJSON is what the incremental test reads of a backup's --json
// result.
type incrBackupJSON struct {
	OK         bool   `json:"ok"`
	Path       string `json:"path"`
	Kind       string `json:"kind"`
	FullReason string `json:"full_reason"`
	Chain      struct {
		Seq     int    `json:"seq"`
		Parent  string `json:"parent"`
		Checked string `json:"checked"`
	} `json:"chain"`
}

// samePoint fails unless db, restored from a point, holds what ref, the
// C CLI's .backup of the source at that point, holds: sqldiff silent on
// content and schema, and the C CLI's integrity_check ok.
func samePoint(t *testing.T, what, ref, db string) {
	t.Helper()
	for _, args := range [][]string{{ref, db}, {"--schema", ref, db}} {
		out, err := exec.Command("sqldiff", args...).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Fatalf("%s: sqldiff %v: %v\n%.2000s", what, args, err, out)
		}
	}
	if got := strings.TrimSpace(cli3(t, db, "PRAGMA integrity_check")); got != "ok" {
		t.Fatalf("%s: integrity_check of the restored database: %s", what, got)
	}
}

// TestIncrementalDifferential: the real binary takes backups with
// --incremental of a database that a real sqlite3 process holds open and
// writes (inserts, updates spread and clustered, deletes, schema
// changes, VACUUM, a page size change, checkpoints of every kind), with
// the page index now and then deleted or an old one put back, and now
// and then a run killed with SIGKILL at a random moment, and retention
// run with random --keep rules. The writer is paused at each point; the
// C CLI's .backup of the source taken then is the reference. Every
// point restores (restore POINT --to) to a database sqldiff finds equal
// to its reference, when it is written and again after the last round,
// every point retention kept still restores, a run after a lost or
// stale index is a full, and no run but a killed one leaves a temp file.
// SQLITE_BACKUP_STRESS=full runs 300 rounds (INCR_ROUNDS to choose).
func TestIncrementalDifferential(t *testing.T) {
	if _, err := exec.LookPath("sqldiff"); err != nil {
		t.Skip("sqldiff not installed (scripts/install-deps.sh)")
	}
	rounds := iterations(40, 300)
	if n, err := strconv.Atoi(os.Getenv("INCR_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("INCR_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (INCR_SEED to repeat), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 30))
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	out := filepath.Join(dir, "out")
	refs := filepath.Join(dir, "refs")
	for _, d := range []string{out, refs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pageSize := []int{1024, 4096, 8192}[rng.IntN(3)]
	cli3(t, src, fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);
CREATE INDEX t_k ON t(k);
INSERT INTO t(k, v) SELECT abs(random()) %% 1000, randomblob(50 + abs(random()) %% 300) FROM generate_series(1, 5000);`, pageSize))
	app := startCLI(t, src)
	app.exec(t, "PRAGMA busy_timeout=10000")
	app.exec(t, "PRAGMA wal_autocheckpoint=0")
	index := filepath.Join(out, "app.db.pageindex")
	fullEvery := 3 + rng.IntN(8)
	run := func(args ...string) result {
		return runBin(t, runOpts{}, append([]string{"--source", src, "--backup-dir", out, "--json"}, args...)...)
	}
	// The reference of every point with a manifest, by name.
	ref := map[string]string{}
	restores := func(name string) {
		t.Helper()
		got := filepath.Join(dir, "restored.db")
		os.Remove(got)
		r := runBin(t, runOpts{}, "restore", filepath.Join(out, name), "--to", got)
		if r.code != 0 {
			t.Fatalf("restore %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
		samePoint(t, name, ref[name], got)
		os.Remove(got)
	}
	var saved []byte // an old page index, put back as a stale one
	stats := map[string]int{}
	for i := range rounds {
		lost := ""
		for range 1 + rng.IntN(3) {
			switch op := rng.IntN(16); op {
			default:
				randomChange(t, app, rng, op, &pageSize, stats)
			case 13:
				if _, err := os.Stat(index); err == nil {
					os.Remove(index)
					lost = "lost"
				}
			case 14:
				if cur, err := os.ReadFile(index); saved != nil && (err != nil || string(cur) != string(saved)) {
					if err := os.WriteFile(index, saved, 0o600); err != nil {
						t.Fatal(err)
					}
					lost = "stale"
				}
			case 15:
				if b, err := os.ReadFile(index); err == nil {
					saved = b
				}
			}
		}
		before := map[string]bool{}
		for _, n := range listDir(t, out) {
			before[n] = true
		}
		args := []string{"--incremental", "--full-every", strconv.Itoa(fullEvery), "--check-every", []string{"0", "24h"}[rng.IntN(2)], "--keep", "0"}
		killed := rng.IntN(8) == 0
		if killed {
			cmd := command(t, runOpts{}, "sqlite-backup", append([]string{"--source", src, "--backup-dir", out}, args...)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			stats["killed"]++
		} else {
			r := run(args...)
			if r.code != 0 {
				t.Fatalf("round %d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
			}
			var b incrBackupJSON
			oneResult(t, r.stdout, &b)
			stats[b.Kind]++
			if lost != "" && b.Kind != "full" {
				t.Fatalf("round %d: the page index was %s, yet the run wrote %s (%+v)", i, lost, b.Kind, b)
			}
			if tmp := tempsIn(t, out); len(tmp) > 0 {
				t.Fatalf("round %d: temp files left: %v", i, tmp)
			}
			// Nor sidecars of a killed run's increment that never got
			// its name.
			for _, n := range listDir(t, out) {
				for _, s := range []string{".json", ".sha256"} {
					if b, ok := strings.CutSuffix(n, s); ok {
						if _, err := os.Stat(filepath.Join(out, b)); err != nil {
							t.Fatalf("round %d: %s left without its backup", i, n)
						}
					}
				}
			}
		}
		// The writer is paused: the source is the state of the point.
		r := filepath.Join(refs, fmt.Sprintf("%03d.db", i))
		cli3(t, src, ".backup "+r)
		for _, n := range listDir(t, out) {
			if before[n] || strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".sha256") || !backupName.MatchString(strings.TrimSuffix(n, ".ltx")) {
				continue
			}
			if _, err := os.Stat(filepath.Join(out, n+".json")); err != nil {
				// An increment's sidecars come before its name: not even
				// a killed run leaves one without them. A full killed
				// between its name and its sidecars is a whole SQLite
				// file, as without --incremental; the next run does not
				// build on it.
				if killed && !strings.HasSuffix(n, ".ltx") {
					stats["killed, a full left without sidecars"]++
					continue
				}
				t.Fatalf("round %d (killed %v): %s has no manifest", i, killed, n)
			}
			ref[n] = r
			restores(n)
		}
		// Retention by random rules, now and then: every kept point must
		// still restore (checked at the end), its chain whole.
		if rng.IntN(6) == 0 {
			keep := 1 + rng.IntN(6)
			pr := runBin(t, runOpts{}, "prune", "--source", src, "--backup-dir", out, "--keep", strconv.Itoa(keep))
			if pr.code != 0 {
				t.Fatalf("round %d: prune --keep %d: exit %d\n%s%s", i, keep, pr.code, pr.stdout, pr.stderr)
			}
			v := runBin(t, runOpts{}, append([]string{"verify"}, pointsIn(t, out)...)...)
			if v.code != 0 {
				t.Fatalf("round %d: after prune --keep %d, verify: exit %d\n%s%s", i, keep, v.code, v.stdout, v.stderr)
			}
			stats["prunes"]++
		}
	}
	// Every retained point, again, after all that followed it.
	for _, p := range pointsIn(t, out) {
		n := filepath.Base(p)
		if _, ok := ref[n]; ok {
			restores(n)
			stats["restored at the end"]++
		}
	}
	t.Logf("page size %d at the end, a full every %d: %v", pageSize, fullEvery, stats)
	if stats["increment"] == 0 || stats["full"] == 0 {
		t.Fatalf("no mix of fulls and increments: %v", stats)
	}
}

// pointsIn lists the backups in dir that have a manifest.
func pointsIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range listDir(t, dir) {
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".sha256") || strings.HasSuffix(n, ".pageindex") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, n+".json")); err == nil {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

// randomChange applies change op (0-12; other values do nothing) of the
// differential tests' write histories through app, the C CLI's session:
// inserts, updates in place and with growth, deletes, side tables made
// and dropped, VACUUM, a page-size change (outside WAL, then back) and
// checkpoints of every kind. Each test adds its own ops above 12.
func randomChange(t *testing.T, app *cliSession, rng *rand.Rand, op int, pageSize *int, stats map[string]int) {
	t.Helper()
	switch op {
	case 0, 1, 2:
		app.exec(t, fmt.Sprintf("INSERT INTO t(k, v) SELECT abs(random()) %% 1000, randomblob(%d) FROM generate_series(1, %d)", 20+rng.IntN(600), 1+rng.IntN(300)))
	case 3, 4:
		app.exec(t, fmt.Sprintf("UPDATE t SET v = randomblob(length(v)) WHERE id %% %d = %d", 50+rng.IntN(300), rng.IntN(50)))
	case 5:
		lo := rng.IntN(5000)
		app.exec(t, fmt.Sprintf("UPDATE t SET k = k + 1, v = randomblob(length(v) + 1) WHERE id BETWEEN %d AND %d", lo, lo+rng.IntN(200)))
	case 6:
		lo := rng.IntN(5000)
		app.exec(t, fmt.Sprintf("DELETE FROM t WHERE id BETWEEN %d AND %d", lo, lo+rng.IntN(800)))
	case 7:
		n := rng.IntN(3)
		app.exec(t, fmt.Sprintf("CREATE TABLE IF NOT EXISTS s%d(a TEXT, b BLOB); INSERT INTO s%d SELECT hex(randomblob(8)), randomblob(%d) FROM generate_series(1, 200)", n, n, 10+rng.IntN(2000)))
	case 8:
		app.exec(t, fmt.Sprintf("DROP TABLE IF EXISTS s%d", rng.IntN(3)))
	case 9:
		app.exec(t, "VACUUM")
		stats["vacuum"]++
	case 10:
		if rng.IntN(4) == 0 {
			*pageSize = []int{1024, 2048, 4096, 8192}[rng.IntN(4)]
			app.exec(t, fmt.Sprintf("PRAGMA journal_mode=DELETE; PRAGMA page_size=%d; VACUUM; PRAGMA journal_mode=WAL", *pageSize))
			stats["page size"]++
		}
	case 11, 12:
		app.exec(t, "PRAGMA wal_checkpoint("+[]string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}[rng.IntN(4)]+")")
	}
}
