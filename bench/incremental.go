package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
)

// The incremental benchmark (go run ./bench -incremental): on a
// generated database, a full backup with verify (the binary) against an
// increment (internal/chain, run in a child process so that its wall
// time and memory are measured as the binary's are) after 1 % of the
// pages changed at random and after 1 % changed in one cluster; then the
// restore of a chain's head after 24 increments against the restore of
// a full. The core's operations run in a child that is this program
// itself, re-run with BENCH_INCR_CHILD set (init below, so that it works
// from the test binary too), which reports how long reading and proving
// took; the same chain is then taken by the binary itself
// (--incremental: row counts, sidecars and the directory lock included)
// and its head restored with restore POINT --to.

// incrChildEnv names the operation a child runs; incrArgsEnv its
// arguments (JSON).
const (
	incrChildEnv = "BENCH_INCR_CHILD"
	incrArgsEnv  = "BENCH_INCR_ARGS"
)

func init() {
	if op := os.Getenv(incrChildEnv); op != "" {
		if err := incrChild(op, os.Getenv(incrArgsEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// incrArgs are a child's arguments.
type incrArgs struct {
	Source string   `json:"source,omitempty"`
	Full   string   `json:"full,omitempty"`   // index-full: the full backup file
	Parent string   `json:"parent,omitempty"` // increment: the parent point's file (its .point.json)
	Index  string   `json:"index,omitempty"`
	Path   string   `json:"path,omitempty"`  // the point to write, or the database to materialize
	Chain  []string `json:"chain,omitempty"` // materialize: the points' files, full first
}

// incrStats is what a child prints.
type incrStats struct {
	Size    int64 `json:"size"`
	Pages   int64 `json:"pages"`
	Changed int64 `json:"changed"`
	ReadMS  int64 `json:"read_ms"`
	ProveMS int64 `json:"prove_ms"`
	WriteMS int64 `json:"write_ms"`
	CheckMS int64 `json:"check_ms"`
}

// pointFile keeps a point for the next child: <file>.point.json.
func savePoint(p chain.Point) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p.Path+".point.json", b, 0o600)
}

func loadPoint(path string) (chain.Point, error) {
	var p chain.Point
	b, err := os.ReadFile(path + ".point.json")
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(b, &p)
}

func incrChild(op, args string) error {
	var a incrArgs
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		return err
	}
	ctx := context.Background()
	var st incrStats
	switch op {
	case "index-full":
		c, err := chain.IndexFull(ctx, chain.FullOptions{Path: a.Full, DB: filepath.Base(a.Source), Index: a.Index})
		if err != nil {
			return err
		}
		sum, err := manifest.FileSHA256(a.Full)
		if err != nil {
			return err
		}
		if err := savePoint(chain.Point{Path: a.Full, SHA256: sum, Chain: c}); err != nil {
			return err
		}
		st.Pages = c.Pages
	case "increment":
		parent, err := loadPoint(a.Parent)
		if err != nil {
			return err
		}
		inc, err := chain.WriteIncrement(ctx, chain.IncrementOptions{Source: a.Source, Parent: parent, Index: a.Index, Path: a.Path, BusyTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		if err := savePoint(inc.Point); err != nil {
			return err
		}
		st = incrStats{Size: inc.Size, Pages: inc.Chain.Pages, Changed: inc.Chain.Changed, ReadMS: inc.Read.Milliseconds(), ProveMS: inc.Prove.Milliseconds()}
	case "materialize":
		var ps []chain.Point
		for _, f := range a.Chain {
			p, err := loadPoint(f)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		m, err := chain.Materialize(ctx, ps, chain.MaterializeOptions{Path: a.Path})
		if err != nil {
			return err
		}
		st = incrStats{Pages: m.Pages, WriteMS: m.Write.Milliseconds(), CheckMS: m.CheckTime.Milliseconds()}
	default:
		return fmt.Errorf("unknown operation %q", op)
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

// child runs one operation in a child process, measured.
func child(op string, a incrArgs) (time.Duration, int64, incrStats, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, incrStats{}, err
	}
	b, _ := json.Marshal(a)
	os.Setenv(incrChildEnv, op)
	os.Setenv(incrArgsEnv, string(b))
	defer os.Unsetenv(incrChildEnv)
	defer os.Unsetenv(incrArgsEnv)
	d, anon, _, out, err := runMeasured([]string{self})
	if err != nil {
		return d, anon, incrStats{}, err
	}
	var st incrStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return d, anon, st, fmt.Errorf("%s: output %q: %v", op, out, err)
	}
	return d, anon, st, nil
}

// incrRound is one round's figures.
type incrRound struct {
	full, fullCopy           time.Duration // backup + verify; copy only
	fullAnon                 int64
	inc                      [2]time.Duration // random, clustered
	incAnon                  [2]int64
	incStats                 [2]incrStats
	restoreFull, restoreHead time.Duration
	verifyFull               time.Duration // one integrity_check of the full: what materializing checks too
	restoreAnon              [2]int64
	headStats                incrStats
	// The binary: an increment after 1 % at random (--incremental), its
	// bytes, and restore of the head of 24 (restore POINT --to).
	binInc, binRestore  time.Duration
	binIncAnon, binSize int64
	binRestoreAnon      int64
}

// changePages changes about pct % of the database's pages: rows picked
// at random, or one run of consecutive rows.
func changePages(src string, pages int64, pct float64, clustered bool, rng *rand.Rand) error {
	var rows, leaves int64
	out, err := exec.Command("sqlite3", src, "SELECT max(id) FROM t; SELECT count(*) FROM dbstat WHERE name='t' AND pagetype='leaf';").Output()
	if err != nil {
		return fmt.Errorf("count rows: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return fmt.Errorf("count rows: %q", out)
	}
	rows, _ = strconv.ParseInt(f[0], 10, 64)
	leaves, _ = strconv.ParseInt(f[1], 10, 64)
	n := max(int64(float64(pages)*pct/100), 1)
	var where string
	if clustered {
		span := n * rows / max(leaves, 1)
		a := 1 + rng.Int64N(max(rows-span, 1))
		where = fmt.Sprintf("id BETWEEN %d AND %d", a, a+span-1)
	} else {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.FormatInt(1+rng.Int64N(rows), 10)
		}
		where = "id IN (" + strings.Join(ids, ",") + ")"
	}
	// Same length: the rows stay in their pages, as an application's
	// updates in place do; the indexed columns stay as they are.
	sql := "UPDATE t SET body = randomblob(length(body)) WHERE " + where
	// On stdin: at 10 GB the id list is past the kernel's limit on one
	// argument (128 KiB).
	cmd := exec.Command("sqlite3", "-bail", src)
	cmd.Stdin = strings.NewReader(sql + ";\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("change pages: %v: %s", err, out)
	}
	return nil
}

func runIncremental(c config, out io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
	src, cleanup, err := prepare(&c, logf)
	if err != nil {
		return err
	}
	defer cleanup()
	bdir := filepath.Join(c.dir, "incr")
	rng := rand.New(rand.NewPCG(c.seed, 30))
	var rounds []incrRound
	var fullSize, fullZstd int64
	// Round 0 warms the page cache and is not counted.
	for r := 0; r <= c.rounds; r++ {
		os.RemoveAll(bdir)
		if err := os.MkdirAll(bdir, 0o700); err != nil {
			return err
		}
		var rd incrRound
		full := filepath.Join(bdir, "src.db.full")
		index := pageindex.Path(bdir, "src.db")
		d, anon, _, _, err := runMeasured([]string{c.bin, "--source", src, "--backup", full + ".copy", "--no-verify"})
		if err != nil {
			return err
		}
		rd.fullCopy = d
		// Each file goes as soon as it is measured: at 10 GB the round
		// would otherwise hold seven copies of the database.
		removeBackup(full + ".copy")
		if d, anon, _, _, err = runMeasured([]string{c.bin, "--source", src, "--backup", full}); err != nil {
			return err
		}
		rd.full, rd.fullAnon = d, anon
		fi, err := os.Stat(full)
		if err != nil {
			return err
		}
		fullSize = fi.Size()
		if r == 0 {
			zst := filepath.Join(bdir, "src.db.zst-full")
			if _, _, _, _, err := runMeasured([]string{c.bin, "--source", src, "--backup", zst, "--compress", "zstd", "--no-verify"}); err != nil {
				return err
			}
			if fi, err := os.Stat(zst + ".zst"); err == nil {
				fullZstd = fi.Size()
			} else if fi, err := os.Stat(zst); err == nil {
				fullZstd = fi.Size()
			}
			removeBackup(zst + ".zst")
			removeBackup(zst)
		}
		if _, _, _, err := child("index-full", incrArgs{Source: src, Full: full, Index: index}); err != nil {
			return err
		}
		parent := full
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		name := func(i int) string {
			return filepath.Join(bdir, "src.db."+t0.Add(time.Duration(i)*time.Hour).Format("20060102_150405")+".ltx")
		}
		points := []string{full}
		for i, clustered := range []bool{false, true} {
			if err := changePages(src, fullSize/4096, 1, clustered, rng); err != nil {
				return err
			}
			p := name(i + 1)
			d, anon, st, err := child("increment", incrArgs{Source: src, Parent: parent, Index: index, Path: p})
			if err != nil {
				return err
			}
			rd.inc[i], rd.incAnon[i], rd.incStats[i] = d, anon, st
			parent = p
			points = append(points, p)
		}
		// 22 more increments of 1 % at random: the head of a chain of 24.
		for i := 3; i <= 24; i++ {
			if err := changePages(src, fullSize/4096, 1, false, rng); err != nil {
				return err
			}
			p := name(i)
			if _, _, _, err := child("increment", incrArgs{Source: src, Parent: parent, Index: index, Path: p}); err != nil {
				return err
			}
			parent = p
			points = append(points, p)
		}
		restored := filepath.Join(bdir, "restored.db")
		removeDB(restored)
		if d, anon, _, _, err = runMeasured([]string{c.bin, "restore", full, "--to", restored}); err != nil {
			return err
		}
		rd.restoreFull, rd.restoreAnon[0] = d, anon
		removeDB(restored)
		if rd.verifyFull, _, _, _, err = runMeasured([]string{c.bin, "verify", full}); err != nil {
			return err
		}
		d, anon, st, err := child("materialize", incrArgs{Chain: points, Path: restored})
		if err != nil {
			return err
		}
		rd.restoreHead, rd.restoreAnon[1], rd.headStats = d, anon, st
		removeDB(restored)
		os.RemoveAll(bdir)
		if err := binChain(c, src, filepath.Join(c.dir, "incr-bin"), fullSize, rng, &rd); err != nil {
			return err
		}
		logf("round %d: full+verify %s, increment random %s (%d pages, %s), clustered %s (%d pages, %s), restore full %s, head of 24 %s; the binary: increment %s (%s), restore of the head %s",
			r, secs(rd.full), secs(rd.inc[0]), rd.incStats[0].Changed, mb(rd.incStats[0].Size), secs(rd.inc[1]), rd.incStats[1].Changed, mb(rd.incStats[1].Size), secs(rd.restoreFull), secs(rd.restoreHead),
			secs(rd.binInc), mb(rd.binSize), secs(rd.binRestore))
		if r > 0 {
			rounds = append(rounds, rd)
		}
	}
	os.RemoveAll(bdir)
	printIncremental(out, c, src, fullSize, fullZstd, rounds)
	return nil
}

// binChain takes a chain of a full and 24 increments of 1 % of the
// pages at random with the binary (--incremental, the materialized check
// not due), timing the first increment, and restores its head.
func binChain(c config, src, dir string, fullSize int64, rng *rand.Rand, rd *incrRound) error {
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	args := []string{c.bin, "--source", src, "--backup-dir", dir, "--incremental", "--full-every", "30", "--check-every", "1000h", "--keep", "0", "--json"}
	if _, _, _, _, err := runMeasured(args); err != nil {
		return err
	}
	var head string
	for i := 1; i <= 24; i++ {
		if err := changePages(src, fullSize/4096, 1, false, rng); err != nil {
			return err
		}
		d, anon, _, out, err := runMeasured(args)
		if err != nil {
			return err
		}
		var rep struct {
			Results []struct {
				Path string `json:"path"`
				Size int64  `json:"size"`
				Kind string `json:"kind"`
			} `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Results) != 1 || rep.Results[0].Kind != "increment" {
			return fmt.Errorf("--incremental run %d: %q: %v", i, out, err)
		}
		head = rep.Results[0].Path
		if i == 1 {
			rd.binInc, rd.binIncAnon, rd.binSize = d, anon, rep.Results[0].Size
		}
	}
	restored := filepath.Join(dir, "restored.db")
	d, anon, _, _, err := runMeasured([]string{c.bin, "restore", head, "--to", restored})
	if err != nil {
		return err
	}
	rd.binRestore, rd.binRestoreAnon = d, anon
	return nil
}

func printIncremental(w io.Writer, c config, src string, fullSize, fullZstd int64, rs []incrRound) {
	med := func(f func(incrRound) time.Duration) time.Duration {
		ss := make([]sample, len(rs))
		for i, r := range rs {
			ss[i].total = f(r)
		}
		return medianOf(ss, func(s sample) time.Duration { return s.total })
	}
	peak := func(f func(incrRound) int64) (n int64) {
		for _, r := range rs {
			n = max(n, f(r))
		}
		return n
	}
	last := rs[len(rs)-1]
	fmt.Fprintf(w, "\n### Incremental backups: %s database (%d bytes, %d pages), median of %d rounds, page cache warm\n\n", humanMB(fullSize), fullSize, last.incStats[0].Pages, len(rs))
	fmt.Fprintf(w, "%d CPUs; %s\n\n", nproc(), binVersion(c.bin))
	fmt.Fprintln(w, "| case | median | peak RssAnon | bytes | of which reading + hashing | proving |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	fmt.Fprintf(w, "| full backup + verify | %s | %s | %d | | |\n", secs(med(func(r incrRound) time.Duration { return r.full })), mb(peak(func(r incrRound) int64 { return r.fullAnon })), fullSize)
	fmt.Fprintf(w, "| full backup, copy only (--no-verify) | %s | | | | |\n", secs(med(func(r incrRound) time.Duration { return r.fullCopy })))
	for i, what := range []string{"1 % of pages at random", "1 % of pages clustered"} {
		st := last.incStats[i]
		fmt.Fprintf(w, "| increment after %s (%d pages changed) | %s | %s | %d | %s | %s |\n", what, st.Changed,
			secs(med(func(r incrRound) time.Duration { return r.inc[i] })), mb(peak(func(r incrRound) int64 { return r.incAnon[i] })), st.Size,
			secs(med(func(r incrRound) time.Duration { return time.Duration(r.incStats[i].ReadMS) * time.Millisecond })),
			secs(med(func(r incrRound) time.Duration { return time.Duration(r.incStats[i].ProveMS) * time.Millisecond })))
	}
	fmt.Fprintf(w, "| restore of the full (`restore FULL --to NEW`) | %s | %s | | | |\n", secs(med(func(r incrRound) time.Duration { return r.restoreFull })), mb(peak(func(r incrRound) int64 { return r.restoreAnon[0] })))
	fmt.Fprintf(w, "| verify of the full (`verify FULL`: its hash and one integrity_check) | %s | | | | |\n", secs(med(func(r incrRound) time.Duration { return r.verifyFull })))
	fmt.Fprintf(w, "| materialize the head of 24 increments + integrity_check | %s | %s | | write %s | check %s |\n",
		secs(med(func(r incrRound) time.Duration { return r.restoreHead })), mb(peak(func(r incrRound) int64 { return r.restoreAnon[1] })),
		secs(med(func(r incrRound) time.Duration { return time.Duration(r.headStats.WriteMS) * time.Millisecond })),
		secs(med(func(r incrRound) time.Duration { return time.Duration(r.headStats.CheckMS) * time.Millisecond })))
	fmt.Fprintf(w, "| the binary: `--incremental` after 1 %% at random (row counts, sidecars, lock) | %s | %s | %d | | |\n",
		secs(med(func(r incrRound) time.Duration { return r.binInc })), mb(peak(func(r incrRound) int64 { return r.binIncAnon })), last.binSize)
	fmt.Fprintf(w, "| the binary: `restore HEAD --to NEW`, head of 24 increments | %s | %s | | | |\n",
		secs(med(func(r incrRound) time.Duration { return r.binRestore })), mb(peak(func(r incrRound) int64 { return r.binRestoreAnon })))
	fmt.Fprintln(w)
	fullT := med(func(r incrRound) time.Duration { return r.full })
	fmt.Fprintln(w, "| ratio | value | target |")
	fmt.Fprintln(w, "| --- | ---: | --- |")
	for i, what := range []string{"random", "clustered"} {
		st := last.incStats[i]
		fmt.Fprintf(w, "| increment bytes / full bytes, %s (neither compressed beyond LTX's LZ4) | %.4f | ≤ 0.02 |\n", what, float64(st.Size)/float64(fullSize))
		if fullZstd > 0 {
			fmt.Fprintf(w, "| increment bytes / full --compress zstd bytes, %s | %.4f | ≤ 0.02 |\n", what, float64(st.Size)/float64(fullZstd))
		}
		fmt.Fprintf(w, "| increment time / (full backup + verify), %s | %.3f | ≤ 0.20 |\n", what, float64(med(func(r incrRound) time.Duration { return r.inc[i] }))/float64(fullT))
	}
	fmt.Fprintf(w, "| the binary's increment time / (full backup + verify) | %.3f | ≤ 0.20 |\n",
		float64(med(func(r incrRound) time.Duration { return r.binInc }))/float64(fullT))
	fmt.Fprintf(w, "| the binary's restore of the head of 24 / restore of a full | %.2f | ≤ 1.5 |\n",
		float64(med(func(r incrRound) time.Duration { return r.binRestore }))/float64(med(func(r incrRound) time.Duration { return r.restoreFull })))
	fmt.Fprintf(w, "| restore of the head of 24 increments / restore of a full | %.2f | ≤ 1.5 |\n",
		float64(med(func(r incrRound) time.Duration { return r.restoreHead }))/float64(med(func(r incrRound) time.Duration { return r.restoreFull })))
	// restore checks the backup before and the result after: twice.
	fmt.Fprintf(w, "| restore of the head of 24 increments / verify of a full (one check each) | %.2f | |\n",
		float64(med(func(r incrRound) time.Duration { return r.restoreHead }))/float64(med(func(r incrRound) time.Duration { return r.verifyFull })))
	fmt.Fprintln(w)
}

func nproc() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}

// removeBackup removes a backup and its sidecars.
func removeBackup(path string) {
	for _, s := range []string{"", ".sha256", ".json"} {
		os.Remove(path + s)
	}
}
