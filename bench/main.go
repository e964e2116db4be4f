// Command bench compares sqlite-backup with the C sqlite3 CLI and cp on a
// generated WAL database with two indexes, warm page cache, interleaved
// runs (A B C … A B C …) and medians, and prints a markdown table of
// medians, ratios and peak memory. It also measures a steady writer's
// commit latency while a backup runs against the same writer idle.
//
//	go run ./bench -size 1024 -n 5          # 1 GB database, 5 timed rounds
//	go run ./bench -smoke                   # seconds: proves the program works
//	go run ./bench -remote -size 200 -n 3   # uploads: sftp/scp, rclone (docs/REMOTE-PERFORMANCE.md)
//	go run ./bench -incremental -size 200 -n 3   # increments (docs/INCREMENTAL.md)
//	go run ./bench -litestream -size 1024 -n 3   # a Litestream replica's restore (docs/LITESTREAM.md)
//
// The databases live in a temp dir (-dir) and are deleted at the end
// unless -db names an existing one. Timings are wall clock of the child
// processes; peak memory is sampled from /proc/<pid>/status while each
// child runs (RssAnon: anonymous memory, which excludes file-backed mmap
// pages; VmHWM: peak RSS including them, for reference).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type config struct {
	sizeMB   int
	rounds   int
	seed     uint64
	dir      string
	db       string
	bin      string
	base     string
	cases    string
	writer   bool
	smoke    bool
	age      bool
	checks   bool
	remote   bool
	incr     bool
	ls       bool
	restore  bool
	interval time.Duration

	writerIdle   time.Duration
	writerRounds int
	writerC      bool
	writerArgs   string
	writerTrace  time.Duration
	writerReopen bool
}

func main() {
	var c config
	flag.IntVar(&c.sizeMB, "size", 1024, "size of the generated database in MB")
	flag.IntVar(&c.rounds, "n", 5, "timed rounds (after one untimed warm-up round)")
	flag.Uint64Var(&c.seed, "seed", 1, "shuffle the cases' order in every timed round with this seed (0: the same order every round)")
	flag.StringVar(&c.dir, "dir", "", "work directory (default: a new temp dir, removed at the end)")
	flag.StringVar(&c.db, "db", "", "use this WAL database instead of a temporary one (kept; generated there first if missing)")
	flag.StringVar(&c.bin, "bin", "", "sqlite-backup binary (default: built from this module with CGO_ENABLED=0)")
	flag.StringVar(&c.base, "base", "", "other sqlite-backup builds to compare against: BIN or LABEL=BIN,LABEL=BIN (e.g. one built from main)")
	flag.StringVar(&c.cases, "cases", "", "comma-separated case names to run (default: all)")
	flag.BoolVar(&c.writer, "writer", true, "measure a concurrent writer's commit latency")
	flag.DurationVar(&c.interval, "writer-interval", 10*time.Millisecond, "pause between the writer's commits")
	flag.DurationVar(&c.writerIdle, "writer-phase", 0, "length of each idle writer phase (default: our backup's median, at least 3s)")
	flag.IntVar(&c.writerRounds, "writer-rounds", 0, "writer rounds (default: -n, at most 3, rounded up to a multiple of the builds, twice that for an odd count above one, so that each comes first and follows each other as often)")
	flag.BoolVar(&c.writerC, "writer-c", true, "also measure the writer during a C pipeline (sqlite3 VACUUM INTO, then integrity_check; .backup never finishes under a writer)")
	flag.StringVar(&c.writerArgs, "writer-args", "", "comma-separated flag sets: also measure the writer during our backup with each (e.g. \"--quick,--no-verify\")")
	flag.BoolVar(&c.writerReopen, "writer-reopen", false, "open the writer's connection anew for each phase (the WAL is then checkpointed and removed between phases) instead of once for the run")
	flag.DurationVar(&c.writerTrace, "writer-trace", 0, "list every commit slower than this during the writer phases, with when it began (0: off; e.g. 4ms; the table always counts those over 4ms)")
	flag.BoolVar(&c.age, "age", false, "measure the cost of encryption instead (-r, the age CLI on the same data; no writer phase)")
	flag.BoolVar(&c.checks, "checks", false, "measure verify on the database with CHECK constraints added (and with a schema for SQLite's own check) against the C CLI's read-write integrity_check instead (no writer phase)")
	flag.BoolVar(&c.restore, "restore", false, "with -remote: time restore and verify of a remote backup against rclone copy / sftp get and a local restore or verify instead of uploads")
	flag.BoolVar(&c.smoke, "smoke", false, "tiny database, one round: checks that the benchmark works")
	flag.BoolVar(&c.remote, "remote", false, "benchmark uploads instead: sqlite-backup --remote against OpenSSH sftp/scp and rclone copy on loopback sshd and versitygw (see docs/REMOTE-PERFORMANCE.md)")
	flag.BoolVar(&c.incr, "incremental", false, "benchmark incremental backups instead: an increment after 1 % of pages changed at random and clustered against a full backup + verify, and the restore of a chain of 24 (see docs/INCREMENTAL.md)")
	flag.BoolVar(&c.ls, "litestream", false, "benchmark the restore of a Litestream replica on loopback versitygw: ours against litestream restore v0.5.18 of the same point (see docs/LITESTREAM.md)")
	flag.Parse()
	if c.smoke {
		c.sizeMB, c.rounds = 4, 1
	}
	runner := run
	if c.remote {
		runner = runRemote
		if c.restore {
			runner = runRemoteRestore
		}
	}
	if c.incr {
		runner = runIncremental
	}
	if c.ls {
		runner = runLitestream
	}
	if err := runner(c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config, out io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
	src, cleanup, err := prepare(&c, logf)
	if err != nil {
		return err
	}
	defer cleanup()
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	// A rollback-journal copy to check: verify cases read it, never the
	// live source.
	ref := filepath.Join(c.dir, "ref.db")
	removeDB(ref)
	if out, err := exec.Command(c.bin, "--source", src, "--backup", ref, "--no-verify").CombinedOutput(); err != nil {
		return fmt.Errorf("make reference copy: %v: %s", err, out)
	}
	defer removeDB(ref)
	// Without its .sha256 sidecar, verify runs only the SQLite check, as
	// the C CLI does; with it, verify would also hash the whole file first.
	for _, s := range []string{".sha256", ".json"} {
		if err := os.Remove(ref + s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}

	cases := benchCases(c.bin, src, ref, filepath.Join(c.dir, "out.db"))
	if c.age {
		if cases, err = ageCases(c.bin, src, ref, c.dir); err != nil {
			return err
		}
		c.writer = false
	}
	bases := parseBases(c.base)
	var labels []string
	for _, b := range bases {
		labels = append(labels, b[0])
	}
	var variants []checkVariant
	if c.checks {
		if variants, err = checkVariants(ref, c.dir, logf); err != nil {
			return err
		}
		cases = checkCases(variants, append([][2]string{{"", c.bin}}, bases...))
		c.writer = false
	}
	for _, b := range bases {
		label, bin := b[0], b[1]
		if c.checks {
			continue
		}
		if c.age {
			cases = append(cases, ageBaseCases(label, bin, src, c.dir)...)
			continue
		}
		cases = append(cases, baseCases(label, bin, src, ref, filepath.Join(c.dir, "out.db"))...)
	}
	if c.cases != "" {
		cases = filterCases(cases, strings.Split(c.cases, ","))
	}
	var res []*caseResult
	if len(cases) > 0 {
		if res, err = runRounds(cases, c.rounds, c.seed, logf); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\n### %s database (%d bytes), median of %d undisturbed runs per case, interleaved (order: %s), page cache warm\n\n", humanMB(fi.Size()), fi.Size(), c.rounds, orderName(c.seed))
	fmt.Fprintf(out, "%s, %d CPUs, %s; %s\n\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), sqlite3Version(), binVersion(c.bin))
	if len(res) > 0 {
		printTable(out, cases, res)
		if c.checks {
			printCheckRatios(out, res, variants, labels)
		} else {
			printRatios(out, res, labels)
		}
		if c.age {
			printAgeCost(out, res, labels)
		}
	}

	if c.writer {
		wr, err := writerLatency(c, src, filepath.Join(c.dir, "wout.db"), res, bases, logf)
		if err != nil {
			return err
		}
		printWriter(out, wr)
	}
	return nil
}

func humanMB(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

func removeDB(p string) {
	// .sha256 and .json: the sidecars every backup now writes next to it.
	for _, s := range []string{"", "-wal", "-shm", "-journal", ".sha256", ".json"} {
		os.Remove(p + s)
	}
}

// ensureSQLite3 installs the C CLI with apt-get when it is missing, and
// says so: the comparison needs it.
func ensureSQLite3(logf func(string, ...any)) error {
	if _, err := exec.LookPath("sqlite3"); err == nil {
		return nil
	}
	logf("the C sqlite3 CLI is missing; installing it with apt-get")
	sudo := []string{}
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, {"apt-get", "install", "-y", "-qq", "sqlite3"}} {
		cmd := exec.Command(append(sudo, args...)[0], append(sudo, args...)[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install sqlite3: %w", err)
		}
	}
	_, err := exec.LookPath("sqlite3")
	return err
}

func sqlite3Version() string {
	out, err := exec.Command("sqlite3", "--version").Output()
	if err != nil {
		return "sqlite3 ?"
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "sqlite3 ?"
	}
	return "C sqlite3 " + f[0]
}

func binVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "sqlite-backup ?"
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// buildBinary builds the module's main package the way it ships.
func buildBinary(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build sqlite-backup: %w", err)
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the benchmark from inside the sqlite-backup module")
	}
	return filepath.Dir(mod), nil
}

// parseBases reads -base: BIN or LABEL=BIN, comma-separated, as
// {label, bin} pairs.
func parseBases(arg string) [][2]string {
	var bases [][2]string
	for _, b := range strings.Split(arg, ",") {
		if b == "" {
			continue
		}
		label, bin, ok := strings.Cut(b, "=")
		if !ok {
			label, bin = "base", b
		}
		bases = append(bases, [2]string{label, bin})
	}
	return bases
}

// generate writes a database of about sizeMB: one table of random rows
// and two indexes (one on an integer, one on text), then switches it to
// WAL. It is built in rollback mode because that is much faster.
func generate(path string, sizeMB int) error {
	removeDB(path)
	rows := int64(sizeMB) << 20 / 420
	script := fmt.Sprintf(`PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-200000;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, body BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d)
INSERT INTO t SELECT i, abs(random()) %% 1000000000, hex(randomblob(12)), randomblob(100 + abs(random()) %% 400) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
PRAGMA journal_mode=WAL;
UPDATE t SET k = k + 1 WHERE id %% 1000 = 0;
`, rows)
	cmd := exec.Command("sqlite3", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("generate %s: %v: %s", path, err, out)
	}
	return nil
}

func orderName(seed uint64) string {
	if seed == 0 {
		return "the same every round"
	}
	return fmt.Sprintf("shuffled every round, -seed %d", seed)
}

// prepare is what every local benchmark starts with: at least one timed
// round, the sqlite3 CLI, a work dir (a new one removed by cleanup unless
// -dir names one), the binary (built unless -bin names one) and the
// source database (generated unless -db names one). c gets the dir and
// the binary.
func prepare(c *config, logf func(string, ...any)) (src string, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if c.rounds < 1 {
		return "", cleanup, fmt.Errorf("-n %d: at least one timed round is needed", c.rounds)
	}
	if err := ensureSQLite3(logf); err != nil {
		return "", cleanup, err
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "sqlite-backup-bench-")
		if err != nil {
			return "", cleanup, err
		}
		undo = append(undo, func() { os.RemoveAll(d) })
		c.dir = d
	} else if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return "", cleanup, err
	}
	if c.bin == "" {
		c.bin = filepath.Join(c.dir, "sqlite-backup")
		logf("building %s (CGO_ENABLED=0)", c.bin)
		if err := buildBinary(c.bin); err != nil {
			return "", cleanup, err
		}
	}
	src = c.db
	if src == "" {
		src = filepath.Join(c.dir, "src.db")
		undo = append(undo, func() { removeDB(src) })
	}
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		logf("generating a %d MB WAL database with two indexes in %s", c.sizeMB, src)
		t0 := time.Now()
		if err := generate(src, c.sizeMB); err != nil {
			return "", cleanup, err
		}
		logf("generated in %s", time.Since(t0).Round(time.Second))
	}
	return src, cleanup, nil
}
