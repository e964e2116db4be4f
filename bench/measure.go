package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// step is one process a case runs; want, if set, must appear in its
// stdout (e.g. "ok" from integrity_check) or the run counts as failed.
type step struct {
	label string
	argv  []string
	want  string
}

type benchCase struct {
	name  string
	clean []string // files removed before each run (not timed)
	steps []step
}

// sample is one run of a case.
type sample struct {
	total time.Duration
	steps []time.Duration
	anon  int64         // peak RssAnon, bytes
	hwm   int64         // peak VmHWM (or rusage maxrss), bytes
	cpu   time.Duration // user + system CPU time of the processes
	// handedBack is how much free memory this virtual machine reported
	// to its host while the case ran (-1: the kernel does not say), and
	// handedBefore how much during the run before it.
	handedBack, handedBefore int64
	round                    int // the timed round it ran in (1, 2, …)
}

type caseResult struct {
	c       benchCase
	samples []sample // runs the host left alone: the medians
	// disturbed are runs during which, or just before which, the virtual
	// machine handed memory back to its host (see reportedKiB).
	disturbed []sample
}

// counted are the samples the medians are taken over: the undisturbed
// ones, or every one if no run was undisturbed.
func (r *caseResult) counted() []sample {
	if len(r.samples) > 0 {
		return r.samples
	}
	return r.disturbed
}

func (r *caseResult) median() time.Duration {
	return medianOf(r.counted(), func(s sample) time.Duration { return s.total })
}

// medianCPU is the median CPU time of the counted runs.
func (r *caseResult) medianCPU() time.Duration {
	return medianOf(r.counted(), func(s sample) time.Duration { return s.cpu })
}

// all are every run, disturbed or not.
func (r *caseResult) all() []sample { return append(slices.Clone(r.samples), r.disturbed...) }

// medianAll is the median of every run, disturbed or not.
func (r *caseResult) medianAll() time.Duration {
	return medianOf(r.all(), func(s sample) time.Duration { return s.total })
}

func (r *caseResult) stepMedian(i int) time.Duration {
	return medianOf(r.counted(), func(s sample) time.Duration { return s.steps[i] })
}

func (r *caseResult) peakAnon() (n int64) {
	for _, s := range r.all() {
		n = max(n, s.anon)
	}
	return n
}

func (r *caseResult) peakHWM() (n int64) {
	for _, s := range r.all() {
		n = max(n, s.hwm)
	}
	return n
}

func medianOf(ss []sample, f func(sample) time.Duration) time.Duration {
	if len(ss) == 0 {
		return 0
	}
	d := make([]time.Duration, len(ss))
	for i, s := range ss {
		d[i] = f(s)
	}
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

// Case names used for ratios.
const (
	caseCp        = "cp"
	caseCpSync    = "cp + fsync"
	caseCBackupIC = "C .backup + integrity_check"
	caseCVacuum   = "C VACUUM INTO"
	caseCIC       = "C integrity_check"
	caseCQC       = "C quick_check"
	caseOurs      = "sqlite-backup (backup + integrity_check)"
	caseOursQuick = "sqlite-backup --quick"
	caseOursCopy  = "sqlite-backup --no-verify (copy only)"
	caseOursVer   = "sqlite-backup verify"
	caseOursVerQ  = "sqlite-backup verify --quick"
)

func benchCases(bin, src, ref, out string) []benchCase {
	// .sha256 and .json: every sqlite-backup backup writes them next to the
	// file (an explicit --backup FILE is never pruned, so no --keep needed).
	sidecars := []string{out, out + "-wal", out + "-shm", out + "-journal", out + ".sha256", out + ".json"}
	// Each target's two cases side by side (the order with -seed 0).
	return []benchCase{
		{name: caseCp, clean: sidecars, steps: []step{{label: "cp", argv: []string{"cp", src, out}}}},
		{name: caseCpSync, clean: sidecars, steps: []step{
			{label: "cp", argv: []string{"cp", src, out}},
			{label: "sync FILE", argv: []string{"sync", out}},
		}},
		{name: caseOursCopy, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out, "--no-verify"}, want: "NOT VERIFIED"}}},
		{name: caseCBackupIC, clean: sidecars, steps: []step{
			{label: "C .backup", argv: []string{"sqlite3", src, ".backup '" + out + "'"}},
			{label: "C integrity_check", argv: []string{"sqlite3", out, "PRAGMA integrity_check"}, want: "ok"},
		}},
		{name: caseOurs, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out}, want: "integrity_check ok"}}},
		{name: caseCVacuum, clean: sidecars, steps: []step{{label: "", argv: []string{"sqlite3", src, "VACUUM INTO '" + out + "'"}}}},
		{name: caseOursQuick, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out, "--quick"}, want: "quick_check ok"}}},
		{name: caseCIC, steps: []step{{argv: []string{"sqlite3", ref, "PRAGMA integrity_check"}, want: "ok"}}},
		{name: caseOursVer, steps: []step{{argv: []string{bin, "verify", ref}, want: ": ok"}}},
		{name: caseCQC, steps: []step{{argv: []string{"sqlite3", ref, "PRAGMA quick_check"}, want: "ok"}}},
		{name: caseOursVerQ, steps: []step{{argv: []string{bin, "verify", "--quick", ref}, want: ": ok"}}},
	}
}

// baseCases are our cases run with another binary, to measure a change.
func baseCases(label, bin, src, ref, out string) []benchCase {
	var cs []benchCase
	for _, c := range benchCases(bin, src, ref, out) {
		if strings.HasPrefix(c.name, "sqlite-backup") {
			c.name = label + ": " + c.name
			cs = append(cs, c)
		}
	}
	return cs
}

func filterCases(all []benchCase, names []string) []benchCase {
	var out []benchCase
	for _, c := range all {
		for _, n := range names {
			if strings.EqualFold(strings.TrimSpace(n), c.name) || strings.Contains(strings.ToLower(c.name), strings.ToLower(strings.TrimSpace(n))) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// runRounds runs every case once untimed (to warm the page cache), then
// rounds times in turn: A B C … A B C …, so drift in machine load hits
// every case alike. With a seed other than 0 each timed round runs the
// cases in a new random order, so that no case always follows the same
// one: on these virtual machines a case's place in the round decided
// whether the host took memory back while it ran (see reportedKiB). A run
// during which that happened, or during the run just before it (the
// memory handed back then costs whoever touches it next), is set aside,
// and the case runs again in an extra round of the cases still short of
// rounds undisturbed runs; at most twice rounds extra rounds.
func runRounds(cases []benchCase, rounds int, seed uint64, logf func(string, ...any)) ([]*caseResult, error) {
	res := make([]*caseResult, len(cases))
	for i, c := range cases {
		res[i] = &caseResult{c: c}
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	var prev int64 // handed back during the run before
	for round := 0; round <= 3*rounds; round++ {
		order := slices.Clone(res)
		if round > 0 && seed != 0 {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		ran := false
		for _, r := range order {
			if round > 0 && len(r.samples) >= rounds {
				continue
			}
			ran = true
			s, err := runCase(r.c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.c.name, err)
			}
			s.handedBefore, prev = prev, s.handedBack
			s.round = round
			if round == 0 {
				logf("warm-up %-42s %s", r.c.name, s.total.Round(time.Millisecond))
				continue
			}
			if s.disturbed() {
				logf("round %d %-42s %s (disturbed: %d MB handed back to the host during it, %d MB during the run before; run again)", round, r.c.name, s.total.Round(time.Millisecond), max(s.handedBack, 0)>>20, max(s.handedBefore, 0)>>20)
				r.disturbed = append(r.disturbed, s)
				continue
			}
			logf("round %d %-42s %s", round, r.c.name, s.total.Round(time.Millisecond))
			r.samples = append(r.samples, s)
		}
		if !ran {
			break
		}
	}
	for _, c := range cases {
		for _, f := range c.clean {
			os.Remove(f)
		}
	}
	return res, nil
}

// disturbed says whether the host took memory back during the run or
// the run before it.
func (s sample) disturbed() bool {
	return s.handedBack > disturbedBytes || s.handedBefore > disturbedBytes
}

func runCase(c benchCase) (sample, error) {
	for _, f := range c.clean {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return sample{}, err
		}
	}
	var s sample
	before, known := reportedBytes()
	for _, st := range c.steps {
		d, cpu, anon, hwm, stdout, err := runMeasuredCPU(st.argv)
		if err != nil {
			return s, err
		}
		s.cpu += cpu
		if st.want != "" && !strings.Contains(stdout, st.want) {
			return s, fmt.Errorf("%s: want %q in output, got %q", strings.Join(st.argv, " "), st.want, stdout)
		}
		s.total += d
		s.steps = append(s.steps, d)
		s.anon = max(s.anon, anon)
		s.hwm = max(s.hwm, hwm)
	}
	s.handedBack = -1
	if after, ok := reportedBytes(); ok && known {
		s.handedBack = after - before
	}
	return s, nil
}

// runMeasured runs argv and returns its wall time and peak memory:
// RssAnon sampled from /proc every few milliseconds, and the larger of
// sampled VmHWM and wait4's maxrss.
func runMeasured(argv []string) (d time.Duration, anon, hwm int64, stdout string, err error) {
	d, _, anon, hwm, stdout, err = runMeasuredCPU(argv)
	return d, anon, hwm, stdout, err
}

// runMeasuredCPU is runMeasured that also returns the CPU time (user +
// system) the process and its waited-for children used: on a host
// that others keep busy, wall time follows it.
func runMeasuredCPU(argv []string) (d, cpu time.Duration, anon, hwm int64, stdout string, err error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, "", err
	}
	done := make(chan struct{})
	peaks := make(chan [2]int64, 1)
	go func() {
		var a, h int64
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if x, y, ok := readStatus(status); ok {
				a, h = max(a, x), max(h, y)
			}
			select {
			case <-done:
				peaks <- [2]int64{a, h}
				return
			case <-tick.C:
			}
		}
	}()
	werr := cmd.Wait()
	d = time.Since(t0)
	close(done)
	p := <-peaks
	anon, hwm = p[0], p[1]
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		hwm = max(hwm, ru.Maxrss*1024)
	}
	cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if werr != nil {
		return d, cpu, anon, hwm, out.String(), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), werr, strings.TrimSpace(errb.String()))
	}
	return d, cpu, anon, hwm, out.String(), nil
}

// readStatus reads RssAnon and VmHWM (bytes) of a running process.
func readStatus(path string) (anon, hwm int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	return parseStatus(f)
}

func parseStatus(r io.Reader) (anon, hwm int64, ok bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		var dst *int64
		switch k {
		case "RssAnon":
			dst = &anon
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		*dst = n * 1024 // the kernel prints kB
		ok = true
	}
	return anon, hwm, ok
}

// reportedKiB counts the free memory that a guest kernel with free page
// reporting (a balloon device) has handed back to its host. On the
// virtual machines this was measured on, the kernel reports about 2 s
// after a large free (here: a case's clean step deleting the last 1 GB
// output), and a case that writes while the host takes the memory back
// runs up to three times slower (264 MB handed back: 1.51 s instead of
// 0.83 s). It strikes whichever case runs 2 s after a large free, so
// the order of the cases, not the program, decides who pays.
var reportedKiB = "/sys/module/page_reporting/parameters/reported_kib"

// disturbedBytes is how much handed-back memory sets a run aside: the
// few MB reported in most runs slow nothing measurable.
const disturbedBytes = 32 << 20

func reportedBytes() (int64, bool) {
	b, err := os.ReadFile(reportedKiB)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false
	}
	return n * 1024, true
}
