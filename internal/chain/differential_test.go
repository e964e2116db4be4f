package chain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/format/pageindex"
)

// envInt reads a test size from the environment (bigger runs by hand).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestDifferential: over randomized histories (inserts, updates spread
// and clustered, deletes, schema changes, VACUUM, page size changes,
// checkpoints, switches between WAL and rollback journal, a lost, damaged
// or stale page index), with the C sqlite3 CLI as the application,
// every point of every chain materializes to the same database as the C
// CLI's .backup of the source taken at that point (pages equal but for
// the header bytes a backup rewrites, sqldiff silent, integrity_check
// ok), when it is written and again after the whole history. Increments
// are read from the files and through sqlite_dbpage, with and without
// LTX checksums. INCR_RUNS and INCR_POINTS make it longer.
func TestDifferential(t *testing.T) {
	runs, points := envInt("INCR_RUNS", 4), envInt("INCR_POINTS", 25)
	if testing.Short() {
		runs, points = 1, 10
	}
	for seed := 1; seed <= runs; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { differential(t, uint64(seed), points) })
	}
}

func differential(t *testing.T, seed uint64, n int) {
	rng := rand.New(rand.NewPCG(seed, 0x1ac))
	pick := func(xs ...int) int { return xs[rng.IntN(len(xs))] }
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	index := pageindex.Path(bdir, "app.db")
	pageSize := pick(512, 1024, 4096, 8192, 65536)
	// About 1.5 MB whatever the page size.
	cli(t, src, fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);
CREATE INDEX t_k ON t(k);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 6000)
INSERT INTO t(k, v) SELECT abs(random()) %% 1000, randomblob(50 + abs(random()) %% 300) FROM c;`, pageSize))
	app := startWriter(t, src)
	app.exec(t, "PRAGMA wal_autocheckpoint=0")
	policy := Policy{FullEvery: 3 + rng.IntN(8), MaxChanged: []float64{0.5, 1}[rng.IntN(2)]}
	t.Logf("page size %d, %+v", pageSize, policy)

	c := newClock()
	byName := map[string]Point{}
	var all []Point
	refs := map[string]string{}
	var head *Point
	var fullTime time.Time
	stats := map[string]int{}
	var saved []byte // an old index, put back as a stale one
	for i := 0; i < n; i++ {
		lost := ""
		for range 1 + rng.IntN(3) {
			switch op := rng.IntN(14); op {
			case 0, 1:
				app.exec(t, fmt.Sprintf("INSERT INTO t(k, v) SELECT abs(random()) %% 1000, randomblob(%d) FROM t LIMIT %d", 20+rng.IntN(600), 1+rng.IntN(400)))
			case 2, 3:
				app.exec(t, fmt.Sprintf("UPDATE t SET v = randomblob(length(v)) WHERE id %% %d = %d", 50+rng.IntN(200), rng.IntN(50)))
			case 4:
				a := rng.IntN(6000)
				app.exec(t, fmt.Sprintf("UPDATE t SET v = randomblob(%d), k = k + 1 WHERE id BETWEEN %d AND %d", 10+rng.IntN(500), a, a+rng.IntN(300)))
			case 5:
				a := rng.IntN(6000)
				app.exec(t, fmt.Sprintf("DELETE FROM t WHERE id BETWEEN %d AND %d", a, a+rng.IntN(2000)))
			case 6:
				app.exec(t, "CREATE TABLE IF NOT EXISTS u(x TEXT); INSERT INTO u SELECT hex(randomblob(100)) FROM t LIMIT 300; CREATE INDEX IF NOT EXISTS u_x ON u(x)")
			case 7:
				app.exec(t, "DROP TABLE IF EXISTS u")
			case 8:
				app.exec(t, "VACUUM")
				stats["vacuum"]++
			case 9:
				ps := pick(512, 1024, 2048, 4096, 16384, 65536)
				app.exec(t, fmt.Sprintf("PRAGMA journal_mode=DELETE; PRAGMA page_size=%d; VACUUM; PRAGMA journal_mode=WAL", ps))
				stats["page size change"]++
			case 10:
				app.exec(t, "PRAGMA wal_checkpoint("+[]string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}[rng.IntN(4)]+")")
				stats["checkpoint"]++
			case 11:
				// A while in rollback-journal mode, then back.
				app.exec(t, "PRAGMA journal_mode=DELETE; INSERT INTO t(k, v) VALUES (1, randomblob(3000)); PRAGMA journal_mode=WAL")
			case 12, 13:
				if rng.IntN(3) != 0 || head == nil {
					continue
				}
				switch rng.IntN(3) {
				case 0:
					lost = "missing"
					os.Remove(index)
				case 1:
					b, err := os.ReadFile(index)
					if err != nil {
						continue // already removed at this point
					}
					lost = "damaged"
					b[pageindex.HeaderSize+rng.IntN(len(b)-pageindex.HeaderSize)] ^= 1
					os.WriteFile(index, b, 0o600)
				case 2:
					if saved == nil {
						continue
					}
					lost = "stale"
					os.WriteFile(index, saved, 0o600)
				}
				stats["index "+lost]++
			}
		}
		if rng.IntN(4) == 0 {
			saved, _ = os.ReadFile(index)
		}

		c.tick()
		reason := policy.Decide(head, fullTime, c.now())
		var p Point
		if reason == "" {
			inc, err := WriteIncrement(context.Background(), IncrementOptions{
				Source: src, Parent: *head, Index: index, Path: incName(bdir, "app.db", c),
				MaxChanged: policy.MaxChanged, NoChecksum: rng.IntN(3) == 0, throughSQLite: rng.IntN(3) == 0,
				BusyTimeout: 5 * time.Second, Now: c.now,
			})
			if r, ok := IsNeedFull(err); ok {
				reason = r
			} else if err != nil {
				t.Fatalf("point %d: %v", i, err)
			} else {
				p = inc.Point
				stats["increment via "+inc.Chain.Read]++
			}
		}
		if lost != "" && head != nil && (reason == "" || !strings.Contains(reason, "page index")) && !strings.Contains(reason, "chain has") {
			t.Fatalf("point %d: the index was %s, yet: %q", i, lost, reason)
		}
		if reason != "" {
			p = full(t, src, bdir, c)
			fullTime = c.now()
			stats["full: "+firstWords(reason)]++
		}
		byName[p.Name()] = p
		all = append(all, p)
		head = &all[len(all)-1]
		ref := filepath.Join(dir, fmt.Sprintf("ref%03d.db", i))
		reference(t, src, ref)
		refs[p.Name()] = ref
		materializeAndJudge(t, byName, p, ref, dir)
	}
	// Later points wrote nothing that an earlier one needs.
	for _, p := range all {
		materializeAndJudge(t, byName, p, refs[p.Name()], dir)
	}
	t.Logf("%d points: %v", len(all), stats)
}

func materializeAndJudge(t *testing.T, byName map[string]Point, p Point, ref, dir string) {
	t.Helper()
	ch, err := Resolve(byName, p.Name())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "restored.db")
	m, err := Materialize(context.Background(), ch, MaterializeOptions{Path: out})
	if err != nil {
		t.Fatalf("materialize %s: %v", p.Name(), err)
	}
	if !m.Check.OK || m.Pages != p.Chain.Pages || m.FromBase+m.FromIncrements > m.Pages {
		t.Fatalf("materialize %s: %+v", p.Name(), m)
	}
	judge(t, out, ref)
	os.Remove(out)
}

// firstWords keeps the kind of a reason, not its numbers and paths.
func firstWords(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(len(f), 3)], " ")
}
