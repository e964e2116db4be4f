package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memThreads are the kernel threads that do memory management on their
// own: DAMON (kdamond), page reclaim (kswapd) and compaction (kcompactd).
// On a kernel that is not preemptible, a commit that wakes on the core
// one of them holds waits until it yields; the writer table reports their
// time per phase so that a run shows how busy they were (on the machines
// of docs/PERFORMANCE.md, kdamond worked several times harder while SQLite
// read a database through mmap).
var memThreads = []string{"kdamond", "kswapd", "kcompactd"}

// kthreadTimes reads, for every process under proc (a /proc, or a
// /proc/PID/task) whose name starts with one of prefixes, its time on a
// CPU: the first field of schedstat, in ns. ok is false where none is
// found. A thread that never ran reads 0, as does every thread on a
// kernel that keeps no schedstat: schedstatKept tells the two apart.
func kthreadTimes(proc string, prefixes []string) (_ map[string]time.Duration, ok bool) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, false
	}
	times := map[string]time.Duration{}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		name := strings.TrimSpace(string(comm))
		if err != nil || !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		if ns, ok := schedstatTime(filepath.Join(proc, e.Name(), "schedstat")); ok {
			times[e.Name()] = ns
		}
	}
	return times, len(times) > 0
}

// schedstatTime reads the time on a CPU from a schedstat file.
func schedstatTime(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns), err == nil
}

// schedstatKept says whether the kernel counts time in schedstat: the
// reading process itself (path: /proc/self/schedstat) has run, so a 0
// there means it does not (before Linux 5.14, with delay accounting off).
// The table then shows "–" instead of 0.
func schedstatKept(path string) bool {
	ns, ok := schedstatTime(path)
	return ok && ns > 0
}

// kthreadMeter measures the memory threads over one phase. Its proc is
// "" (no reading) where the kernel keeps no schedstat.
type kthreadMeter struct {
	proc  string
	at    time.Time
	times map[string]time.Duration
	ok    bool
}

func startKthreads(proc string) kthreadMeter {
	times, ok := kthreadTimes(proc, memThreads)
	return kthreadMeter{proc, time.Now(), times, ok}
}

// stop adds the threads' time since start, and the phase's length, to s.
// A thread that ended meanwhile took its time with it, so the phase is
// then left out (counted in kthreadLost); one that began meanwhile is
// counted from 0.
func (m kthreadMeter) stop(s *writerStats) {
	wall := time.Since(m.at)
	now, ok := kthreadTimes(m.proc, memThreads)
	if !m.ok || !ok {
		s.kthreadLost++
		return
	}
	var sum time.Duration
	for pid, t0 := range m.times {
		t1, alive := now[pid]
		if !alive || t1 < t0 { // gone, or its pid taken by another
			s.kthreadLost++
			return
		}
		sum += t1 - t0
	}
	for pid, t1 := range now {
		if _, old := m.times[pid]; !old {
			sum += t1
		}
	}
	s.kthreadCPU += sum
	s.kthreadWall += wall
}
