package main

import (
	"os"
	"path/filepath"
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
// found, or where all read 0 (a kernel that keeps no schedstat prints
// zeros): the table then says so instead of showing 0.
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
		times[e.Name()] = time.Duration(ns)
		if ns > 0 {
			ok = true
		}
	}
	return times, ok
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// kthreadMeter measures the memory threads over one phase.
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
