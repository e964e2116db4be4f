package chain

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"sqlite-backup/internal/format/pageindex"
)

// TestLiveWriter: increments taken while the application commits without
// pause (transfers between accounts, each logged, in WAL mode with
// automatic checkpoints, explicit TRUNCATE checkpoints and an occasional
// VACUUM, so the WAL restarts under the reads) are consistent snapshots:
// every point materializes, passes integrity_check, and keeps the
// writer's invariants: the money adds up, and every account's balance is
// what its logged transfers say.
func TestLiveWriter(t *testing.T) {
	points := envInt("INCR_LIVE_POINTS", 30)
	if testing.Short() {
		points = 8
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	index := pageindex.Path(bdir, "app.db")
	cli(t, src, `PRAGMA journal_mode=WAL;
CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
CREATE TABLE log(id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amt INTEGER, pad BLOB);
CREATE INDEX log_src ON log(src); CREATE INDEX log_dst ON log(dst);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 1000) INSERT INTO acct SELECT i, 1000 FROM c;`)

	cmd := exec.Command("sqlite3", "-batch", "-bail", src)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bufferedErr
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var txs atomic.Int64
	wrote := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(in, 4096)
		rng := rand.New(rand.NewPCG(3, 3))
		fmt.Fprintln(w, ".timeout 10000")
		for i := 0; !stop.Load(); i++ {
			a, b := 1+rng.IntN(1000), 1+rng.IntN(1000)
			amt := 1 + rng.IntN(50)
			fmt.Fprintf(w, "BEGIN; UPDATE acct SET bal = bal - %d WHERE id = %d; UPDATE acct SET bal = bal + %d WHERE id = %d; INSERT INTO log(src, dst, amt, pad) VALUES (%d, %d, %d, randomblob(%d)); COMMIT;\n",
				amt, a, amt, b, a, b, amt, 50+rng.IntN(400))
			switch {
			case i%700 == 699:
				fmt.Fprintln(w, "PRAGMA wal_checkpoint(TRUNCATE);")
			case i%2500 == 2499:
				fmt.Fprintln(w, "VACUUM;")
			}
			if i%20 == 0 {
				if err := w.Flush(); err != nil {
					wrote <- err
					return
				}
			}
			txs.Add(1)
		}
		w.Flush()
		wrote <- in.Close()
	}()

	c := newClock()
	policy := Policy{FullEvery: 10}
	var all []Point
	byName := map[string]Point{}
	var head *Point
	var fullTime time.Time
	fulls := 0
	for i := 0; i < points; i++ {
		time.Sleep(time.Duration(30+i%5*30) * time.Millisecond)
		c.tick()
		var p Point
		reason := policy.Decide(head, fullTime, c.now())
		if reason == "" {
			inc, err := WriteIncrement(context.Background(), IncrementOptions{Source: src, Parent: *head, Index: index,
				Path: incName(bdir, "app.db", c), BusyTimeout: 10 * time.Second, throughSQLite: i%4 == 3})
			if r, ok := IsNeedFull(err); ok {
				reason = r
			} else if err != nil {
				t.Fatalf("point %d: %v", i, err)
			} else {
				p = inc.Point
			}
		}
		if reason != "" {
			p = full(t, src, bdir, c)
			fullTime = c.now()
			fulls++
		}
		byName[p.Name()] = p
		all = append(all, p)
		head = &all[len(all)-1]
	}
	stop.Store(true)
	if err := <-wrote; err != nil {
		t.Fatalf("writer: %v: %s", err, stderr.String())
	}
	if err := cmd.Wait(); err != nil || stderr.Len() > 0 {
		t.Fatalf("writer: %v: %s", err, stderr.String())
	}
	var lastLog string
	for _, p := range all {
		ch, err := Resolve(byName, p.Name())
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "restored.db")
		if _, err := Materialize(context.Background(), ch, MaterializeOptions{Path: out}); err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
		if r := cli(t, out, "PRAGMA integrity_check"); r != "ok" {
			t.Fatalf("%s: integrity_check: %s", p.Name(), r)
		}
		if r := cli(t, out, "SELECT sum(bal) FROM acct"); r != "1000000" {
			t.Fatalf("%s: the money adds up to %s", p.Name(), r)
		}
		if r := cli(t, out, `SELECT count(*) FROM acct a WHERE bal != 1000
 + coalesce((SELECT sum(amt) FROM log WHERE dst = a.id), 0) - coalesce((SELECT sum(amt) FROM log WHERE src = a.id), 0)`); r != "0" {
			t.Fatalf("%s: %s accounts disagree with their log", p.Name(), r)
		}
		n := cli(t, out, "SELECT count(*) FROM log")
		if n == lastLog {
			t.Logf("%s: no commit since the point before (%s transfers)", p.Name(), n)
		}
		lastLog = n
		os.Remove(out)
	}
	t.Logf("%d points (%d fulls) over %d transfers", len(all), fulls, txs.Load())
}

// bufferedErr collects the writer's stderr.
type bufferedErr struct {
	b []byte
}

func (e *bufferedErr) Write(p []byte) (int, error) { e.b = append(e.b, p...); return len(p), nil }
func (e *bufferedErr) Len() int                    { return len(e.b) }
func (e *bufferedErr) String() string              { return string(e.b) }
