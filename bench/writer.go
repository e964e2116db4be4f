package main

import (
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite"
)

// writerStats are the commit latencies of one phase.
type writerStats struct {
	lat    []time.Duration
	at     []time.Time // when each commit began
	failed int
	errs   []string
	// The kernel's memory threads' time on a CPU over the phases where
	// it could be read, those phases' length, and how many could not be
	// (see kthreadMeter).
	kthreadCPU, kthreadWall time.Duration
	kthreadLost             int
}

// kthreadRate is the memory threads' time on a CPU per second of the
// phases where it was read, with how many were left out, or "–" where
// none was.
func (s *writerStats) kthreadRate() string {
	if s.kthreadWall <= 0 {
		return "–"
	}
	r := fmt.Sprintf("%.1f ms/s", float64(s.kthreadCPU)/1e6/s.kthreadWall.Seconds())
	switch {
	case s.kthreadLost == 1:
		r += " (1 phase left out)"
	case s.kthreadLost > 1:
		r += fmt.Sprintf(" (%d phases left out)", s.kthreadLost)
	}
	return r
}

func (s *writerStats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	d := slices.Clone(s.lat)
	slices.Sort(d)
	i := int(p*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// slowCommit is the latency over which the writer table counts a commit.
const slowCommit = 4 * time.Millisecond

// over counts the commits slower than d.
func (s *writerStats) over(d time.Duration) int {
	n := 0
	for _, l := range s.lat {
		if l > d {
			n++
		}
	}
	return n
}

type writerResult struct {
	idle      writerStats
	during    []*writerStats // one per build, indexed as labels
	labels    []string
	backups   [][]time.Duration
	reopen    bool // -writer-reopen
	traceOver time.Duration
	traces    []traceRow
}

// openWriter opens the writer's connection to src (as an application
// would: WAL, default synchronous=FULL, busy_timeout 5s).
func openWriter(src string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS bench_w(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// writer commits one small row per transaction through db every interval
// until stop is closed, and records each commit's latency. With db nil
// it opens its own connection to src for the phase and closes it after.
func writer(db *sql.DB, src string, interval time.Duration, stop <-chan struct{}, st *writerStats) error {
	if db == nil {
		var err error
		if db, err = openWriter(src); err != nil {
			return err
		}
		defer db.Close()
	}
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(interval):
		}
		t0 := time.Now()
		_, err := db.Exec("INSERT INTO bench_w(v) VALUES(randomblob(200))")
		d := time.Since(t0)
		if err != nil {
			st.failed++
			if len(st.errs) < 3 {
				st.errs = append(st.errs, err.Error())
			}
			continue
		}
		st.lat = append(st.lat, d)
		st.at = append(st.at, t0)
	}
}

// runBeside runs one command of a build beside the writer, in a session
// of its own, as cron or a systemd timer starts a backup apart from the
// application. The kernel groups a session's threads for scheduling
// (autogroup), and whether a waking thread may take a core at once from
// a running one can depend on the two sharing a group: with the backup
// in the writer's session, the idle class for our check looked like a
// gain here, and with the backup apart it was a loss (see
// docs/PERFORMANCE.md, "Writer latency"). Out of the
// terminal's process group, the command does not get a Ctrl-C meant for
// the benchmark: it finishes its backup on its own.
func runBeside(argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd.Run()
}

// writerLatency alternates idle phases (writer alone) with phases where
// one of the builds (ours, each -base build, ours with each -writer-args
// set, the C pipeline) copies and verifies src while the writer runs, each
// lasting until one second after the backup ends so the writer's first
// commits after the copy (which checkpoint the WAL that grew meanwhile)
// count. The builds take turns at coming first and at following each
// other (phaseOrder).
func writerLatency(c config, src, out string, res []*caseResult, bases [][2]string, logf func(string, ...any)) (*writerResult, error) {
	phase := 3 * time.Second
	if r := find(res, caseOurs); r != nil && r.median() > phase {
		phase = r.median()
	}
	if c.writerIdle > 0 {
		phase = c.writerIdle
	}
	// What runs beside the writer: our build (then each -base build)
	// with default flags, ours with each -writer-args set, and the C
	// pipeline the issue compares with.
	type phaseRun struct {
		label string
		argv  [][]string // run one after the other
	}
	ours := func(bin string, extra ...string) [][]string {
		return [][]string{append([]string{bin, "--source", src, "--backup", out}, extra...)}
	}
	builds := []phaseRun{{"sqlite-backup", ours(c.bin)}}
	for _, b := range bases {
		builds = append(builds, phaseRun{b[0], ours(b[1])})
	}
	if c.writerArgs != "" {
		for _, a := range strings.Split(c.writerArgs, ",") {
			builds = append(builds, phaseRun{"sqlite-backup " + a, ours(c.bin, strings.Fields(a)...)})
		}
	}
	if c.writerC {
		// Not the C CLI's .backup: it copies 100 pages per step, restarts
		// after every commit of the writer, and never finishes.
		builds = append(builds, phaseRun{"C VACUUM INTO + integrity_check", [][]string{
			{"sqlite3", src, "VACUUM INTO '" + out + "'"},
			{"sqlite3", out, "PRAGMA integrity_check"},
		}})
	}
	// By default a multiple of phaseCycle, so that each build comes first
	// and follows each other one equally often.
	rounds := min(max(c.rounds, 1), 3)
	cycle := phaseCycle(len(builds))
	rounds = (rounds + cycle - 1) / cycle * cycle
	if c.writerRounds > 0 {
		rounds = c.writerRounds
		if rounds%cycle != 0 {
			logf("writer rounds %d: not a multiple of %d, so the builds' order is not balanced", rounds, cycle)
		}
	}
	wr := &writerResult{traceOver: c.writerTrace, reopen: c.writerReopen}
	for _, b := range builds {
		wr.labels = append(wr.labels, b.label)
		wr.during = append(wr.during, &writerStats{})
		wr.backups = append(wr.backups, nil)
	}
	// One connection for the whole run, as an application keeps its
	// pool open: the WAL then lives on between phases as it does beside
	// a running application. (Closing the last connection checkpoints
	// the WAL and deletes it, so with -writer-reopen, as in
	// the benchmark of 2026-11-29, each phase starts with a new one.)
	var db *sql.DB
	if !c.writerReopen {
		var err error
		if db, err = openWriter(src); err != nil {
			return nil, fmt.Errorf("writer: %w", err)
		}
		defer db.Close()
	}
	proc := "/proc" // the kernel's memory threads (kthreadMeter)
	if !schedstatKept("/proc/self/schedstat") {
		proc = ""
	}
	for round := 1; round <= rounds; round++ {
		// Idle.
		idleFrom, idleStart := len(wr.idle.lat), time.Now()
		stop := make(chan struct{})
		errc := make(chan error, 1)
		kt := startKthreads(proc)
		go func() { errc <- writer(db, src, c.interval, stop, &wr.idle) }()
		time.Sleep(phase + time.Second)
		close(stop)
		err := <-errc
		kt.stop(&wr.idle)
		if err != nil {
			return nil, fmt.Errorf("writer: %w", err)
		}
		logf("writer round %d idle: %d commits", round, len(wr.idle.lat))
		wr.trace(round, "idle", &wr.idle, idleFrom, idleStart)

		for _, i := range phaseOrder(round, len(builds)) {
			b := builds[i]
			// During a backup.
			removeDB(out)
			from := len(wr.during[i].lat)
			stop = make(chan struct{})
			kt = startKthreads(proc)
			go func() { errc <- writer(db, src, c.interval, stop, wr.during[i]) }()
			time.Sleep(200 * time.Millisecond)
			t0 := time.Now()
			var berr error
			for _, argv := range b.argv {
				if berr = runBeside(argv); berr != nil {
					break
				}
			}
			d := time.Since(t0)
			wr.backups[i] = append(wr.backups[i], d)
			time.Sleep(time.Second)
			close(stop)
			werr := <-errc
			kt.stop(wr.during[i])
			removeDB(out)
			if berr != nil {
				return nil, fmt.Errorf("backup under writer: %w", berr)
			}
			if werr != nil {
				return nil, fmt.Errorf("writer: %w", werr)
			}
			logf("writer round %d during %s (%s): %d commits", round, b.label, d.Round(time.Millisecond), len(wr.during[i].lat))
			wr.trace(round, "during "+b.label, wr.during[i], from, t0)
		}
	}
	return wr, nil
}

// phaseOrder is the order of the builds' phases in writer round round
// (1-based). The place matters on a VM that hands free memory back to its
// host (see reportedKiB), and so does the phase before: the build right
// after the idle phase writes its copy into memory the host took back
// meanwhile, the others into memory the phase before them has just freed,
// and how much depends on that phase. With three builds (2026-11-29) the
// fsync's commit came 0.6-0.9 s into a backup right after one of ours and
// 0.85-3.2 s in after the idle phase or the C pipeline. So the rounds
// follow a Williams design: over phaseCycle(n) rounds each build comes
// first (after the idle phase) equally often and follows each other build
// equally often. (Before, each round started one build later, which
// balanced only the first place: with three builds, the one after ours
// followed ours in two rounds of three.)
func phaseOrder(round, n int) []int {
	if n <= 1 {
		return make([]int, n)
	}
	// First row 0, 1, n-1, 2, n-2, ...; the others add r to each.
	base := make([]int, n)
	for k, lo, hi := 1, 1, n-1; k < n; k++ {
		if k%2 == 1 {
			base[k], lo = lo, lo+1
		} else {
			base[k], hi = hi, hi-1
		}
	}
	r := (round - 1) % phaseCycle(n)
	rev := r >= n // odd n: the second half is the first reversed
	r %= n
	order := make([]int, n)
	for k := range order {
		order[k] = (base[k] + r) % n
	}
	if rev {
		slices.Reverse(order)
	}
	return order
}

// phaseCycle is the number of rounds after which phaseOrder has balanced
// both places and predecessors: n for an even count of builds, 2n for an
// odd count above one.
func phaseCycle(n int) int {
	if n <= 1 || n%2 == 0 {
		return max(n, 1)
	}
	return 2 * n
}

// traceRow lists one phase's commits over -writer-trace.
type traceRow struct {
	round          int
	phase, commits string
}

// trace records, with -writer-trace, the commits of s from index from on
// that took longer than the bound, each at its start in seconds from t0
// (the backup's start; an idle phase's own start). The writer starts 0.2 s
// before a backup, so a backup phase's first commits are negative.
func (wr *writerResult) trace(round int, phase string, s *writerStats, from int, t0 time.Time) {
	if wr.traceOver <= 0 {
		return
	}
	var list []string
	for k := from; k < len(s.lat); k++ {
		if s.lat[k] > wr.traceOver {
			list = append(list, fmt.Sprintf("%.2f s: %s", s.at[k].Sub(t0).Seconds(), ms(s.lat[k])))
		}
	}
	commits := "none"
	if len(list) > 0 {
		commits = strings.Join(list, ", ")
	}
	wr.traces = append(wr.traces, traceRow{round, phase, commits})
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func printWriter(w io.Writer, wr *writerResult) {
	conn := "one connection for the run"
	if wr.reopen {
		conn = "a connection per phase"
	}
	fmt.Fprintf(w, "Writer: one INSERT per transaction every few ms on the source (WAL, synchronous=FULL, %s), %d rounds; backup under the writer took %s.\n\n", conn, len(wr.backups[0]), durList(wr.backups[0]))
	fmt.Fprintf(w, "| writer phase | commits | failed | p50 | p99 | max | over %s | kernel memory threads |\n", slowCommit)
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	row := func(name string, s *writerStats) {
		slow := s.over(slowCommit)
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %d (%.2f %%) | %s |\n", name, len(s.lat), s.failed, ms(s.pct(0.5)), ms(s.pct(0.99)), ms(s.pct(1)), slow, 100*float64(slow)/float64(max(len(s.lat), 1)), s.kthreadRate())
	}
	row("idle", &wr.idle)
	for i, l := range wr.labels {
		row("during "+l, wr.during[i])
	}
	if idle := wr.idle.pct(0.99); idle > 0 {
		for i, l := range wr.labels {
			v := wr.during[i].pct(0.99).Seconds() / idle.Seconds()
			verdict := "met"
			if v > 2 || wr.during[i].failed > 0 {
				verdict = "NOT met"
			}
			fmt.Fprintf(w, "\n%s: p99 during / p99 idle = %.2f (target ≤ 2 with 0 failed commits: %s)\n", l, v, verdict)
		}
	}
	if len(wr.traces) > 0 {
		fmt.Fprintf(w, "\nCommits over %s, each at its start in seconds from the start of the backup (of the phase, for idle; negative: in the 0.2 s before the backup), with its latency:\n\n", wr.traceOver)
		fmt.Fprintln(w, "| round | phase | commits |")
		fmt.Fprintln(w, "| ---: | --- | --- |")
		for _, r := range wr.traces {
			fmt.Fprintf(w, "| %d | %s | %s |\n", r.round, r.phase, r.commits)
		}
	}
	errs := wr.idle.errs
	for _, d := range wr.during {
		errs = append(errs, d.errs...)
	}
	for _, e := range errs {
		fmt.Fprintf(w, "\nwriter error: %s\n", e)
	}
}

func durList(ds []time.Duration) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += d.Round(10 * time.Millisecond).String()
	}
	return s
}
