package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"sqlite-backup/internal/testdb"
)

// startCPUs are the CPUs this process started with: a test that left
// threads pinned fails the next one instead of making it skip.
var startCPUs = func() (s unix.CPUSet) { unix.SchedGetaffinity(0, &s); return s }()

// masks reads the CPUs each thread of this process may run on.
func masks(t *testing.T) map[int]unix.CPUSet {
	t.Helper()
	out := map[int]unix.CPUSet{}
	for _, tid := range threads() {
		var s unix.CPUSet
		if unix.SchedGetaffinity(tid, &s) == nil {
			out[tid] = s
		}
	}
	if len(out) == 0 {
		t.Fatal("no thread of this process could be read")
	}
	return out
}

// needCPUs skips on a one-CPU process and fails if a thread does not
// have the CPUs the process started with.
func needCPUs(t *testing.T) {
	t.Helper()
	if startCPUs.Count() < 2 || runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one CPU: nothing to keep to")
	}
	allBack(t, "before the test")
}

func allBack(t *testing.T, when string) {
	t.Helper()
	for id, m := range masks(t) {
		if m != startCPUs {
			t.Errorf("thread %d may run on %d CPUs %s, want the %d it had", id, m.Count(), when, startCPUs.Count())
		}
	}
}

// onOneCPU fails unless every thread in ms has the same single CPU.
func onOneCPU(t *testing.T, ms map[int]unix.CPUSet, when string) {
	t.Helper()
	var first unix.CPUSet
	for id, m := range ms {
		if first.Count() == 0 {
			first = m
		}
		if m.Count() != 1 || m != first {
			t.Errorf("thread %d may run on %d CPUs %s, want the same one as every other thread", id, m.Count(), when)
		}
	}
}

func TestOneCore(t *testing.T) {
	needCPUs(t)
	restore := oneCore()
	pinned := masks(t)

	// Threads the runtime starts while pinned: more locked goroutines
	// than there are threads, so at least one thread is new.
	n := len(threads()) + 1
	tids := make(chan int)
	release := make(chan struct{})
	defer close(release)
	for range n {
		go func() {
			runtime.LockOSThread() // a thread of its own, not handed back
			tids <- unix.Gettid()
			<-release
		}()
	}
	for range n {
		tid := <-tids
		var m unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &m); err != nil {
			t.Fatal(err)
		}
		pinned[tid] = m
	}
	onOneCPU(t, pinned, "while pinned")

	restore()
	allBack(t, "after restore")
}

// backupUnderWriter backs up a small WAL database with a commit from the
// snapshot's hook (beside or after the copy, inside the snapshot), so
// that the check runs as under a writing application.
func backupUnderWriter(t *testing.T, ctx context.Context, progress func(done, total int64, finished bool)) (*Result, error) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	app := testdb.Open(t, src, testdb.Options{WAL: true, Rows: 100})
	defer app.Close()
	return Run(ctx, Options{
		Source: src, Dir: filepath.Join(dir, "out"),
		Snapshot: func(ctx context.Context, _ *sql.Conn) error {
			_, err := app.ExecContext(ctx, "INSERT INTO t(v) VALUES (randomblob(10))")
			return err
		},
		VerifyProgress: progress, // its first call: as the check starts
	})
}

// TestCheckUnderAWriterOnOneCore: while the application writes, every
// thread of the process keeps to one CPU during the check of the copy,
// and gets its CPUs back after it.
func TestCheckUnderAWriterOnOneCore(t *testing.T) {
	needCPUs(t)
	var during map[int]unix.CPUSet
	res, err := backupUnderWriter(t, context.Background(), func(_, _ int64, _ bool) {
		if during == nil {
			during = masks(t)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verify != "ok" || during == nil {
		t.Fatalf("verify %q, progress called: %v", res.Verify, during != nil)
	}
	onOneCPU(t, during, "during the check")
	allBack(t, "after the backup")
}

// TestCheckCanceledGivesCPUsBack: a check that ends in an error (here
// canceled as it starts) gives the threads their CPUs and Ps back too.
func TestCheckCanceledGivesCPUsBack(t *testing.T) {
	needCPUs(t)
	procs := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := false
	_, err := backupUnderWriter(t, ctx, func(_, _ int64, _ bool) { started = true; cancel() })
	// Only the check calls progress: a backup that failed before it
	// would prove nothing here.
	if !started || !errors.Is(err, context.Canceled) {
		t.Fatalf("check started: %v, error %v (want the check canceled)", started, err)
	}
	allBack(t, "after a failed backup")
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Fatalf("GOMAXPROCS %d after a failed backup, want %d", got, procs)
	}
}
