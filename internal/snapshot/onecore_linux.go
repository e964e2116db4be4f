package snapshot

import (
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oneCore keeps every thread of this process on the CPU the calling
// thread is running on, and returns a function that gives them back the
// CPUs the caller had. It is for the check of a backup while the
// application writes: the check already runs on one P, but the Go
// runtime's other threads (sysmon wakes every 10 ms while a goroutine
// runs) still ran on the other core, and there the application's commits
// met waits of 8-20 ms that C's single-threaded check did not cause (see
// docs/PERFORMANCE.md, "Writer latency"; measured 2026-12-02 on
// build 3863d73). With the whole process on one core they became rare.
//
// Best effort: a thread that ends meanwhile, or an affinity the kernel
// refuses (seccomp), is left as it is. Not for two backups at once in
// one process: the first to finish would free the other's threads.
func oneCore() (restore func()) {
	var cpu uint32
	var own, one unix.CPUSet
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); e != 0 || unix.SchedGetaffinity(0, &own) != nil {
		return func() {}
	}
	one.Set(int(cpu))
	setAll(&one)
	// Every thread had the caller's CPUs: nothing else here sets them.
	return func() { setAll(&own) }
}

// setAll lets every thread of this process run on the CPUs m only. A
// thread started meanwhile takes the mask of the thread that started it,
// set or not yet: list again (up to four times) until none is new.
func setAll(m *unix.CPUSet) {
	done := map[int]bool{}
	for range 4 {
		n := len(done)
		for _, tid := range threads() {
			if !done[tid] {
				done[tid] = true
				unix.SchedSetaffinity(tid, m) // best effort: it may have ended
			}
		}
		if len(done) == n {
			break
		}
	}
}

// threads lists this process's thread IDs.
func threads() []int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out
}
