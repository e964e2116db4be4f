package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// memThreads are the kernel threads that do memory management on their
// own: DAMON's monitor and reclaim (kdamond), page reclaim (kswapd) and
// compaction (kcompactd). On the machines this benchmark was written on
// (virtual machines whose kernel runs DAMON reclaim), kdamond's CPU time
// rose from about 2 ms a second to 8-20 ms a second while SQLite read a
// database through mmap, ours or the C CLI's with mmap_size set, and a
// writer's commit that woke on kdamond's core waited for it: that kernel
// is not preemptible. The writer table reports their time per phase, so
// a run shows how much of what the writer met came from them.
var memThreads = []string{"kdamond", "kswapd", "kcompactd"}

// kthreadCPU sums the time on a CPU (the first field of schedstat, in ns)
// of every process under proc (a /proc) whose name starts with one of
// prefixes. ok is false where none is found or the kernel keeps no
// schedstat: the table then says so instead of showing 0.
func kthreadCPU(proc string, prefixes []string) (_ time.Duration, ok bool) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err != nil || !hasAnyPrefix(strings.TrimSpace(string(comm)), prefixes) {
			continue
		}
		st, err := os.ReadFile(filepath.Join(proc, e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		sum += time.Duration(ns)
		ok = true
	}
	return sum, ok
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// kthreadMeter adds the memory threads' CPU time over a phase to a
// writerStats.
type kthreadMeter struct {
	at  time.Time
	cpu time.Duration
	ok  bool
}

func startKthreads() kthreadMeter {
	cpu, ok := kthreadCPU("/proc", memThreads)
	return kthreadMeter{time.Now(), cpu, ok}
}

func (m kthreadMeter) stop(s *writerStats) {
	cpu, ok := kthreadCPU("/proc", memThreads)
	if !m.ok || !ok || cpu < m.cpu { // a thread gone: not comparable
		s.kthreadLost = true
		return
	}
	s.kthreadCPU += cpu - m.cpu
	s.kthreadWall += time.Since(m.at)
}
