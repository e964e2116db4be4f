package main

import (
	"bytes"
	"database/sql"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sqlite-backup/internal/testdb"
)

// TestSmoke runs the whole benchmark on a 4 MB database, one round (two
// writer rounds of two builds, every commit traced), so CI proves the
// program still works without paying for the real thing. It checks the
// report's shape, never a time: the second writer round starts with the
// second build, and each phase's trace lists exactly the commits its
// table row counts, none before the writer's 0.2 s lead-in.
func TestSmoke(t *testing.T) {
	var out bytes.Buffer
	c := config{sizeMB: 4, rounds: 1, dir: t.TempDir(), writer: true, interval: 5 * time.Millisecond, smoke: true, writerRounds: 2, writerArgs: "--quick", writerTrace: time.Nanosecond}
	if err := run(c, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"| " + caseCpSync + " |",
		"| " + caseCBackupIC + " |",
		"| " + caseOurs + " |",
		"| " + caseOursVerQ + " |",
		caseOurs + " / " + caseCBackupIC,
		"| idle |",
		"| during sqlite-backup |",
		"| during sqlite-backup --quick |",
		"synchronous=FULL, one connection for the run), 2 rounds",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "writer error") {
		t.Errorf("writer failed commits:\n%s", s)
	}

	first, second := strings.Index(s, "| 2 | during sqlite-backup --quick |"), strings.Index(s, "| 2 | during sqlite-backup |")
	if first < 0 || second < 0 || first > second {
		t.Errorf("round 2 did not start with the second build:\n%s", s)
	}
	listed := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\| \d \| ([^|]+) \| (.*) \|$`).FindAllStringSubmatch(s, -1) {
		for _, e := range strings.Split(m[2], ", ") {
			at, err := strconv.ParseFloat(strings.Fields(e)[0], 64)
			if err != nil || at < -0.25 {
				t.Errorf("%s: commit %q", m[1], e)
			}
			listed[m[1]]++
		}
	}
	// The memory threads' column: a rate where this kernel shows them
	// (a phase may be left out where one of them ended meanwhile).
	cell := "–"
	if _, ok := kthreadTimes("/proc", memThreads); ok && schedstatKept("/proc/self/schedstat") {
		cell = `\d+\.\d ms/s( \(\d+ phases? left out\))?`
	}
	if rows := regexp.MustCompile(`(?m)^\| (idle|during [^|]+) \|.* \| `+cell+` \|$`).FindAllString(s, -1); len(rows) != 3 {
		t.Errorf("%d writer rows end in %s, want 3:\n%s", len(rows), cell, s)
	}
	phases := regexp.MustCompile(`(?m)^\| (idle|during [^|]+) \| (\d+) \|`).FindAllStringSubmatch(s, -1)
	if len(phases) != 3 {
		t.Errorf("%d writer phases in the table, want 3:\n%s", len(phases), s)
	}
	for _, m := range phases {
		if n, _ := strconv.Atoi(m[2]); listed[m[1]] != n {
			t.Errorf("%s: %d commits listed, %d counted", m[1], listed[m[1]], n)
		}
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t 10000 kB\nRssAnon:\t    1536 kB\nRssFile:\t 8000 kB\n"
	anon, hwm, ok := parseStatus(strings.NewReader(in))
	if !ok || anon != 1536*1024 || hwm != 20480*1024 {
		t.Fatalf("parseStatus = %d, %d, %v", anon, hwm, ok)
	}
}

// TestDisturbedRoundsRerun fakes the kernel's count of memory handed back
// to the host with a file that the cases' commands bump, and checks that
// exactly the runs during which, or right after which, it grew are set
// aside and made up in extra rounds.
func TestDisturbedRoundsRerun(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "reported_kib")
	if err := os.WriteFile(counter, []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := reportedKiB
	reportedKiB = counter
	t.Cleanup(func() { reportedKiB = old })

	// hands back 40 MiB on the runs numbered in $2 (1 is the warm-up),
	// and counts its runs in the file $1.
	const host = `n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 )); echo $n > "$1"
case " $2 " in *" $n "*) echo $(( $(cat "$3") + 40960 )) > "$3";; esac`
	bump := func(name, runs string) benchCase {
		return benchCase{name: name, steps: []step{{argv: []string{"sh", "-c", host, "sh", filepath.Join(dir, name), runs, counter}}}}
	}
	runs := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	type want struct {
		runs              string
		counted, setAside int
	}
	check := func(res []*caseResult, wants []want) {
		t.Helper()
		for i, w := range wants {
			r := res[i]
			if got := runs(r.c.name); got != w.runs {
				t.Errorf("%s ran %s times, want %s", r.c.name, got, w.runs)
			}
			if len(r.counted()) != w.counted || len(r.disturbed) != w.setAside {
				t.Errorf("%s: %d counted, %d set aside; want %d, %d", r.c.name, len(r.counted()), len(r.disturbed), w.counted, w.setAside)
			}
		}
	}

	// In the fixed order twice, after, quiet: twice hands memory back in
	// the first two timed rounds, which disturbs after, the run that
	// follows it, too; quiet follows after and is left alone.
	res, err := runRounds([]benchCase{bump("twice", "2 3"), bump("after", ""), bump("quiet", "")}, 2, 0, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	check(res, []want{
		{"5", 2, 2}, // warm-up, 2 rounds set aside, made up in rounds 3 and 4
		{"5", 2, 2},
		{"3", 2, 0}, // warm-up and 2 rounds
	})
	for _, s := range res[1].disturbed {
		if s.handedBack != 0 || s.handedBefore != 40<<20 {
			t.Errorf("after: handed back %d during, %d before; want 0 and %d", s.handedBack, s.handedBefore, 40<<20)
		}
	}

	// Never undisturbed: 3×2 rounds, then its medians take them all.
	res, err = runRounds([]benchCase{bump("always", "1 2 3 4 5 6 7 8 9 10")}, 2, 0, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	check(res, []want{{"7", 6, 6}})

	// Without the kernel's count nothing is set aside, though the
	// command still bumps the file.
	reportedKiB = filepath.Join(dir, "absent")
	res, err = runRounds([]benchCase{bump("every", "1 2 3 4 5 6")}, 2, 0, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	check(res, []want{{"3", 2, 0}})
	if h := res[0].samples[0].handedBack; h != -1 {
		t.Errorf("without a count: handedBack %d, want -1", h)
	}
}

// TestShuffledRounds checks that with a seed every timed round runs
// every case once, and not always in the same order.
func TestShuffledRounds(t *testing.T) {
	runs := runOrder(t, []string{"a", "b", "c", "d"}, 6, 7)
	if len(runs) != 4*7 {
		t.Fatalf("%d runs, want 28 (warm-up and 6 rounds of 4): %v", len(runs), runs)
	}
	orders := map[string]bool{}
	for i := 0; i < len(runs); i += 4 {
		round := slices.Clone(runs[i : i+4])
		orders[strings.Join(round, "")] = true
		slices.Sort(round)
		if strings.Join(round, "") != "abcd" {
			t.Errorf("round %d ran %v, want each case once", i/4, runs[i:i+4])
		}
	}
	if len(orders) < 3 {
		t.Errorf("only %d different orders in 7 rounds: %v", len(orders), runs)
	}
}

// TestFixedOrder checks that -seed 0 runs the cases in the given order
// every round.
func TestFixedOrder(t *testing.T) {
	if got := strings.Join(runOrder(t, []string{"a", "b", "c"}, 3, 0), ""); got != "abcabcabcabc" {
		t.Errorf("order %q, want abc four times (warm-up and 3 rounds)", got)
	}
}

// runOrder runs cases that only log their names, and returns the log:
// the order in which runRounds ran them.
func runOrder(t *testing.T, names []string, rounds int, seed uint64) []string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "order")
	var cases []benchCase
	for _, name := range names {
		cases = append(cases, benchCase{name: name, steps: []step{{argv: []string{"sh", "-c", `echo "$1" >> "$2"`, "sh", name, log}}}})
	}
	if _, err := runRounds(cases, rounds, seed, t.Logf); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestPhaseOrder: over a cycle of writer rounds, every round runs each
// build once, each build comes first equally often, and each follows each
// other build equally often.
func TestPhaseOrder(t *testing.T) {
	for n := 1; n <= 6; n++ {
		cycle := phaseCycle(n)
		if cycle%n != 0 || (n > 1 && cycle < n) {
			t.Fatalf("n=%d: cycle %d", n, cycle)
		}
		first := map[int]int{}
		follows := map[[2]int]int{}
		for round := 1; round <= cycle; round++ {
			order := phaseOrder(round, n)
			if len(order) != n {
				t.Fatalf("n=%d round %d: order %v", n, round, order)
			}
			seen := map[int]bool{}
			for k, i := range order {
				if i < 0 || i >= n || seen[i] {
					t.Fatalf("n=%d round %d: order %v", n, round, order)
				}
				seen[i] = true
				if k > 0 {
					follows[[2]int{order[k-1], i}]++
				}
			}
			first[order[0]]++
			if next := phaseOrder(round+cycle, n); !slices.Equal(next, order) {
				t.Fatalf("n=%d: round %d is %v, round %d %v", n, round, order, round+cycle, next)
			}
		}
		for i := range n {
			if first[i] != cycle/n {
				t.Errorf("n=%d: build %d came first in %d of %d rounds, want %d", n, i, first[i], cycle, cycle/n)
			}
			for j := range n {
				if i != j && follows[[2]int{i, j}] != cycle/n {
					t.Errorf("n=%d: build %d came right after build %d in %d of %d rounds, want %d", n, j, i, follows[[2]int{i, j}], cycle, cycle/n)
				}
			}
		}
	}
}

// TestWriterStats: p99 and the count over a bound, on known latencies.
func TestWriterStats(t *testing.T) {
	var s writerStats
	for i := 1; i <= 200; i++ {
		s.lat = append(s.lat, time.Duration(201-i)*100*time.Microsecond) // 20 ms down to 0.1 ms
	}
	if got, want := s.pct(0.99), 19800*time.Microsecond; got != want {
		t.Errorf("p99 %v, want %v", got, want)
	}
	if got := s.over(4 * time.Millisecond); got != 160 {
		t.Errorf("over 4 ms: %d, want 160", got)
	}
	if got := s.over(20 * time.Millisecond); got != 0 {
		t.Errorf("over 20 ms: %d, want 0", got)
	}
}

// TestTrace: with a bound, a phase's commits over it are listed from the
// phase's first commit on, at their start from t0; without one, nothing.
func TestTrace(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	s := &writerStats{}
	add := func(at, lat time.Duration) {
		s.at = append(s.at, t0.Add(at))
		s.lat = append(s.lat, lat)
	}
	add(-time.Second, 9*time.Millisecond) // an earlier round's commit
	add(250*time.Millisecond, 5*time.Millisecond)
	add(260*time.Millisecond, time.Millisecond)
	add(800*time.Millisecond, 450*time.Millisecond)

	wr := &writerResult{traceOver: 4 * time.Millisecond}
	wr.trace(2, "during sqlite-backup", s, 1, t0)
	wr.trace(3, "idle", s, len(s.lat), t0)
	want := []traceRow{
		{2, "during sqlite-backup", "0.25 s: 5.0 ms, 0.80 s: 450.0 ms"},
		{3, "idle", "none"},
	}
	if !slices.Equal(wr.traces, want) {
		t.Errorf("traces %+v, want %+v", wr.traces, want)
	}
	off := &writerResult{}
	off.trace(1, "idle", s, 0, t0)
	if len(off.traces) != 0 {
		t.Errorf("traced without a bound: %+v", off.traces)
	}
}

// TestWriterKeepsItsConnection: by default the writer's phases share one
// connection, so the WAL outlives each phase as it does beside a running
// application; without it (-writer-reopen) each phase opens and closes
// its own, the last, and the WAL is checkpointed and removed.
func TestWriterKeepsItsConnection(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	testdb.Create(t, src, testdb.Options{WAL: true, Rows: 10})
	walExists := func() bool {
		_, err := os.Stat(src + "-wal")
		return err == nil
	}
	// rows counts the writer's rows through a connection of its own,
	// closed before it returns; 0 before the writer made its table.
	rows := func() int {
		t.Helper()
		r, err := sql.Open("sqlite", "file:"+src)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		n := 0
		r.QueryRow("SELECT count(*) FROM bench_w").Scan(&n)
		return n
	}
	// phase runs the writer until it has committed a row, so that a
	// writer that never opened its connection cannot pass.
	phase := func(db *sql.DB) {
		t.Helper()
		before := rows()
		stop := make(chan struct{})
		st := &writerStats{}
		done := make(chan error)
		go func() { done <- writer(db, src, time.Millisecond, stop, st) }()
		for deadline := time.Now().Add(10 * time.Second); rows() == before; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				close(stop)
				t.Fatalf("the writer committed nothing in 10 s: %v", <-done)
			}
		}
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st.failed != 0 {
			t.Fatalf("%d failed commits: %v", st.failed, st.errs)
		}
	}
	db, err := openWriter(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		phase(db)
		if !walExists() {
			t.Fatalf("after shared phase %d: no -wal, so the writer's connection was closed", i)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if walExists() {
		t.Fatal("-wal left after the last connection closed")
	}
	phase(nil)
	if walExists() {
		t.Fatal("after a phase with reopen: -wal left, so the phase's connection stayed open")
	}
}

// TestRunBesideOwnSession: a build's command beside the writer leads a
// session of its own (its session id is its own pid), so the kernel does
// not schedule it as one group with the benchmark's writer. The shell
// reads its session id from /proc (field 6 of stat); it fails the run
// where the two differ.
func TestRunBesideOwnSession(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	own := `read -r _ _ _ _ _ sid _ < /proc/$$/stat; [ "$sid" = "$$" ]`
	if err := runBeside([]string{"sh", "-c", own}); err != nil {
		t.Fatalf("command beside the writer is not in a session of its own: %v", err)
	}
	// The same test on this process, which does not lead a session (go
	// test's child), so that the shell's test is known to tell the two apart.
	if sid, err := unix.Getsid(0); err != nil || sid == os.Getpid() {
		return // this process leads its session (a container's first process)
	}
	if err := runBeside([]string{"sh", "-c", `read -r _ _ _ _ _ sid _ < /proc/` + strconv.Itoa(os.Getpid()) + `/stat; [ "$sid" = "` + strconv.Itoa(os.Getpid()) + `" ]`}); err == nil {
		t.Fatal("the session test passed for the test process too; it cannot tell")
	}
}

// fakeProc writes a /proc-like tree: a process directory with comm and
// schedstat for each entry.
func fakeProc(t *testing.T, dir string, procs map[string][2]string) {
	t.Helper()
	for pid, p := range procs {
		d := filepath.Join(dir, pid)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, text := range map[string]string{"comm": p[0], "schedstat": p[1]} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func sum(times map[string]time.Duration) (d time.Duration) {
	for _, t := range times {
		d += t
	}
	return d
}

// TestKthreadTimes: the memory threads are the processes whose name
// starts with a prefix, each with the first schedstat field (0 for one
// that never ran); other processes, entries that are not processes and a
// broken schedstat are left out; no match gives no reading. A schedstat
// of the reading process that says 0 means the kernel keeps none.
func TestKthreadTimes(t *testing.T) {
	proc := t.TempDir()
	fakeProc(t, proc, map[string][2]string{
		"78":   {"kdamond.0\n", "5000000 120000 31\n"},
		"91":   {"kswapd0\n", "1500000 0 4\n"},
		"4242": {"bash\n", "900000000 0 77\n"},
		"self": {"kdamond.9\n", "7000000 0 1\n"}, // not a pid
		"95":   {"kcompactd0\n", "garbage\n"},
		"96":   {"kcompactd1\n", "0 0 0\n"},
	})
	times, ok := kthreadTimes(proc, memThreads)
	if want := map[string]time.Duration{"78": 5 * time.Millisecond, "91": 1500 * time.Microsecond, "96": 0}; !ok || !maps.Equal(times, want) {
		t.Errorf("memory threads: %v %v, want %v true", times, ok, want)
	}
	if times, ok := kthreadTimes(proc, []string{"kthreadd"}); ok || len(times) != 0 {
		t.Errorf("no match: %v %v, want none, false", times, ok)
	}
	for _, c := range []struct {
		pid  string
		kept bool
	}{{"4242", true}, {"96", false}, {"95", false}, {"missing", false}} {
		if got := schedstatKept(filepath.Join(proc, c.pid, "schedstat")); got != c.kept {
			t.Errorf("schedstat kept, judged from %s: %v, want %v", c.pid, got, c.kept)
		}
	}
}

// TestKthreadMeter: over a phase, each thread's time is what it gained;
// a thread that began meanwhile counts from 0; a thread that ended, or a
// phase without a reading, is left out and counted as such; the rate is
// over the phases kept.
func TestKthreadMeter(t *testing.T) {
	proc := t.TempDir()
	set := func(pid, comm string, ns int64) {
		fakeProc(t, proc, map[string][2]string{pid: {comm + "\n", strconv.FormatInt(ns, 10) + " 0 1\n"}})
	}
	var s writerStats
	set("78", "kdamond.0", 5_000_000)
	set("91", "kswapd0", 1_000_000)
	m := startKthreads(proc)
	set("78", "kdamond.0", 9_000_000) // +4 ms
	set("99", "kcompactd0", 500_000)  // new: +0.5 ms
	m.stop(&s)
	if s.kthreadCPU != 4500*time.Microsecond || s.kthreadLost != 0 || s.kthreadWall <= 0 {
		t.Errorf("one phase: cpu %v, lost %d, wall %v; want 4.5ms, 0, > 0", s.kthreadCPU, s.kthreadLost, s.kthreadWall)
	}

	m = startKthreads(proc)
	if err := os.RemoveAll(filepath.Join(proc, "91")); err != nil {
		t.Fatal(err)
	}
	set("78", "kdamond.0", 20_000_000)
	wall := s.kthreadWall
	m.stop(&s)
	if s.kthreadCPU != 4500*time.Microsecond || s.kthreadLost != 1 || s.kthreadWall != wall {
		t.Errorf("a thread gone: cpu %v, lost %d, wall %v; want the first phase's alone and 1 lost", s.kthreadCPU, s.kthreadLost, s.kthreadWall)
	}

	none := startKthreads(t.TempDir())
	none.stop(&s)
	if s.kthreadLost != 2 {
		t.Errorf("no reading: lost %d, want 2", s.kthreadLost)
	}

	r := writerStats{kthreadCPU: 25 * time.Millisecond, kthreadWall: 10 * time.Second}
	if got := r.kthreadRate(); got != "2.5 ms/s" {
		t.Errorf("rate %q, want 2.5 ms/s", got)
	}
	r.kthreadLost = 1
	if got := r.kthreadRate(); got != "2.5 ms/s (1 phase left out)" {
		t.Errorf("rate %q, want it with 1 phase left out", got)
	}
	r.kthreadLost = 2
	if got := r.kthreadRate(); got != "2.5 ms/s (2 phases left out)" {
		t.Errorf("rate %q, want it with 2 phases left out", got)
	}
	if got := (&writerStats{kthreadLost: 3}).kthreadRate(); got != "–" {
		t.Errorf("rate without a reading %q, want –", got)
	}
}

// TestKthreadTimesReal reads the real kernel's schedstat: over this
// process's own threads (/proc/self/task, all named as the process), the
// time on a CPU grows by what getrusage says the process used meanwhile
// (both count the same runtime; the margin is for a tick not yet added).
func TestKthreadTimesReal(t *testing.T) {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if !schedstatKept("/proc/self/schedstat") {
		t.Skip("this kernel keeps no schedstat")
	}
	name := []string{strings.TrimSpace(string(comm))}
	before, ok := kthreadTimes("/proc/self/task", name)
	if !ok {
		t.Fatalf("no thread of %q under /proc/self/task", name[0])
	}
	used := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	x, start := uint64(1), used()
	for used()-start < 40*time.Millisecond {
		for k := 0; k < 10000; k++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	after, _ := kthreadTimes("/proc/self/task", name)
	got, spent := sum(after)-sum(before), used()-start
	if got < spent-20*time.Millisecond || got > spent+20*time.Millisecond {
		t.Errorf("%q: %v on a CPU in schedstat while getrusage counted %v (%d)", name[0], got, spent, x%2)
	}
}

// TestIncrementalSmoke runs the incremental benchmark on a 4 MB
// database, one round: the children (this test binary re-run) work and
// the report has its rows. It checks no time.
func TestIncrementalSmoke(t *testing.T) {
	var out bytes.Buffer
	c := config{sizeMB: 4, rounds: 1, dir: t.TempDir(), seed: 1}
	if err := runIncremental(c, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| full backup + verify |", "| increment after 1 % of pages at random", "| increment after 1 % of pages clustered", "| materialize the head of 24 increments", "| restore of the head of 24 increments / restore of a full |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPaired: the median of per-round differences, only over rounds in
// which both ran, set-aside runs counted.
func TestPaired(t *testing.T) {
	s := func(round int, secs float64) sample {
		return sample{round: round, total: time.Duration(secs * float64(time.Second))}
	}
	a := &caseResult{samples: []sample{s(1, 10), s(2, 12), s(4, 9)}, disturbed: []sample{s(3, 30)}}
	b := &caseResult{samples: []sample{s(1, 8), s(2, 11.5), s(3, 27)}, disturbed: []sample{s(5, 1)}}
	// Rounds 1, 2, 3 have both: differences 2, 0.5, 3; median 2.
	got, n := paired(a, b)
	if n != 3 || got != 2*time.Second {
		t.Fatalf("paired = %v over %d rounds, want 2s over 3", got, n)
	}
	if _, n := paired(a, &caseResult{}); n != 0 {
		t.Fatalf("no common round: %d", n)
	}
}
