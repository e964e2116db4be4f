package chain

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/snapshot"
)

// writeSidecars writes a point's .sha256 and .json as the wiring will.
func writeSidecars(p *Point) error {
	if err := manifest.WriteSHA256(p.Path, p.SHA256); err != nil {
		return err
	}
	c := p.Chain
	return manifest.Write(p.Path, &manifest.Manifest{Version: manifest.Version, Backup: p.Name(), SHA256: p.SHA256, Chain: &c})
}

// loadPoint reads a point from its sidecars; ok is false without them.
func loadPoint(t *testing.T, path string) (Point, bool) {
	m, err := manifest.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Point{}, false
	}
	if err != nil || m.Chain == nil {
		t.Fatalf("manifest of %s: %v", path, err)
	}
	sum, err := manifest.ReadSHA256(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return Point{Path: path, SHA256: sum, Chain: *m.Chain}, true
}

// TestKilledHelper is the run TestKilled kills: one increment, its
// sidecars written by the Published hook, as the wiring will.
func TestKilledHelper(t *testing.T) {
	env := os.Getenv("INCR_KILLED")
	if env == "" {
		t.Skip("run by TestKilled")
	}
	var o struct{ Source, Parent, Index, Path, Pause string }
	if err := json.Unmarshal([]byte(env), &o); err != nil {
		t.Fatal(err)
	}
	parent, ok := loadPoint(t, o.Parent)
	if !ok {
		t.Fatal("no parent")
	}
	// Pause says where to wait for the kill: in the windows between
	// the increment's name, its sidecars and the index.
	pause := func(at string) {
		if o.Pause == at {
			os.WriteFile(o.Path+".paused", nil, 0o600)
			time.Sleep(time.Minute)
		}
	}
	_, err := WriteIncrement(context.Background(), IncrementOptions{Source: o.Source, Parent: parent, Index: o.Index, Path: o.Path,
		MaxChanged: 1, BusyTimeout: 5 * time.Second, Published: func(ctx context.Context, p *Point) error {
			pause("named")
			err := writeSidecars(p)
			pause("sidecars")
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKilled: a run killed with SIGKILL at any moment leaves no file
// under a final name that is not whole (an increment, if named, decodes
// and its .json, if there, records it), an index that is either the
// parent's or one a manifest records, and temp files the next run
// removes; the next run builds a point that materializes to the C
// CLI's .backup, as does every point with a manifest.
func TestKilled(t *testing.T) {
	rounds := envInt("INCR_KILLS", 12)
	if testing.Short() {
		rounds = 4
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	bdir := filepath.Join(dir, "backups")
	index := pageindex.Path(bdir, "app.db")
	cli(t, src, `PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 40000) INSERT INTO t(v) SELECT randomblob(400) FROM c;`)
	app := startWriter(t, src)
	app.exec(t, "PRAGMA wal_autocheckpoint=0")
	c := newClock()
	head := full(t, src, bdir, c)
	if err := writeSidecars(&head); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	outcomes := map[string]int{}
	for round := range rounds {
		app.exec(t, fmt.Sprintf("UPDATE t SET v = randomblob(400) WHERE id %% %d = %d", 3+rng.IntN(40), rng.IntN(3)))
		c.tick()
		path := incName(bdir, "app.db", c)
		pause := []string{"", "named", "", "sidecars"}[round%4]
		env, _ := json.Marshal(map[string]string{"Source": src, "Parent": head.Path, "Index": index, "Path": path, "Pause": pause})
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "INCR_KILLED="+string(env))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.After(time.Duration(rng.IntN(600)) * time.Millisecond)
		if pause != "" {
			delay = nil
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		paused := time.NewTicker(10 * time.Millisecond)
	wait:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("round %d: helper failed: %v\n%s", round, err, out.String())
				}
				outcomes["finished"]++
				break wait
			case <-paused.C:
				if _, err := os.Stat(path + ".paused"); err != nil {
					continue
				}
				os.Remove(path + ".paused")
			case <-delay:
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			break
		}
		paused.Stop()

		// What the killed run left.
		_, named := os.Stat(path)
		inc, recorded := loadPoint(t, path)
		if named == nil {
			if err := whole(path); err != nil {
				t.Fatalf("round %d: %s is named but not whole: %v", round, path, err)
			}
		} else if recorded {
			t.Fatalf("round %d: a manifest without its increment", round)
		}
		digest, _ := manifest.FileSHA256(index)
		switch {
		case digest == head.Chain.IndexSHA256:
		case recorded && digest == inc.Chain.IndexSHA256:
		default:
			t.Fatalf("round %d: the index is neither the parent's nor one a manifest records", round)
		}
		switch {
		case named != nil:
			outcomes["nothing named"]++
		case !recorded:
			outcomes["increment named, no manifest"]++
		case digest == head.Chain.IndexSHA256:
			outcomes["increment and manifest, old index"]++
		default:
			outcomes["all done"]++
		}
		if recorded {
			head = inc
		}

		// The next run: temp files go (under the lock), then a point.
		snapshot.RemoveStaleTemps(bdir)
		if left, _ := filepath.Glob(filepath.Join(bdir, ".sqlite-backup-tmp-*")); len(left) > 0 {
			t.Fatalf("round %d: temp files left: %v", round, left)
		}
		c.tick()
		next, err := WriteIncrement(context.Background(), IncrementOptions{Source: src, Parent: head, Index: index,
			Path: incName(bdir, "app.db", c), MaxChanged: 1, BusyTimeout: 5 * time.Second,
			Published: func(ctx context.Context, p *Point) error { return writeSidecars(p) }})
		var p Point
		if _, ok := IsNeedFull(err); ok {
			p = full(t, src, bdir, c)
			if err := writeSidecars(&p); err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatal(err)
		} else {
			p = next.Point
		}
		head = p
		ref := filepath.Join(dir, "ref.db")
		reference(t, src, ref)
		byName := map[string]Point{}
		entries, _ := os.ReadDir(bdir)
		for _, e := range entries {
			if q, ok := loadPoint(t, filepath.Join(bdir, e.Name())); ok {
				byName[q.Name()] = q
			}
		}
		materializeAndJudge(t, byName, p, ref, dir)
		os.Remove(ref)
	}
	t.Logf("%d rounds: %v", rounds, outcomes)
}

// whole decodes an LTX file to its end: structure and file checksum.
func whole(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return ltx.NewDecoder(bufio.NewReader(f)).Verify()
}
