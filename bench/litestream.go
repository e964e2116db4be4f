package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"sqlite-backup/internal/testserver"
)

// With -litestream the benchmark times the restore of a Litestream
// replica on a loopback versitygw: the real Litestream v0.5.18
// (scripts/install-deps.sh) replicates the generated database (a
// snapshot, then a few transactions), is stopped, and then, interleaved,
// our `restore s3://…` (built, integrity_check, published) against
// `litestream restore` of the same point without and with its full
// integrity check. Peak RssAnon of each.
func runLitestream(c config, out io.Writer) (err error) {
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
	src, cleanup, err := prepare(&c, logf)
	if err != nil {
		return err
	}
	defer cleanup()
	tb := &benchTB{dir: c.dir}
	defer tb.done()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	ls := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "litestream")
	if v, err := exec.Command(ls, "version").Output(); err != nil || !strings.Contains(string(v), "v0.5.18") {
		return fmt.Errorf("litestream v0.5.18 not in %s: run scripts/install-deps.sh", ls)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}

	s3 := testserver.StartS3(tb)
	s3.MakeBucket(tb, "bench")
	env := append(os.Environ(), s3.Env()...)
	env = append(env, "HOME="+tb.TempDir())
	// Litestream's S3 settings are in its config; an AWS_CA_BUNDLE fails
	// its client at start ("unable to add custom RootCAs").
	lsEnv := withoutAWS()
	repDir := filepath.Join(s3.Dir, "bench", "ls")
	cfg := filepath.Join(c.dir, "litestream.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`snapshot:
  interval: 1h
dbs:
  - path: %s
    replica:
      type: s3
      bucket: bench
      path: ls
      endpoint: %s
      region: us-east-1
      force-path-style: true
      access-key-id: %s
      secret-access-key: %s
      sync-interval: 200ms
`, src, s3.Endpoint(), s3.Access, s3.Secret)), 0o600)

	// Replicate: the first sync uploads the whole database; then a few
	// transactions, each a level-0 file on top.
	logf("litestream replicate to %s", repDir)
	rep := exec.Command(ls, "replicate", "-config", cfg)
	rep.Env = lsEnv
	logFile, _ := os.Create(cfg + ".log")
	rep.Stdout, rep.Stderr = logFile, logFile
	if err := rep.Start(); err != nil {
		return err
	}
	stopRep := func() {
		rep.Process.Signal(os.Interrupt)
		rep.Wait()
		logFile.Close()
	}
	defer stopRep()
	waitFor := func(what string, ok func() bool) error {
		for deadline := time.Now().Add(30 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if ok() {
				return nil
			}
		}
		return fmt.Errorf("litestream: %s: timed out (see %s.log)", what, cfg)
	}
	count := func(level string) int {
		fs, _ := filepath.Glob(filepath.Join(repDir, level, "*.ltx")) // the S3 client's layout
		return len(fs)
	}
	if err := waitFor("the first sync", func() bool { return count("0000") > 0 }); err != nil {
		return err
	}
	for i := range 5 {
		if o, err := exec.Command("sqlite3", src, fmt.Sprintf("PRAGMA busy_timeout=10000; UPDATE t SET k = k + 1 WHERE id %% 997 = %d;", i)).CombinedOutput(); err != nil {
			return fmt.Errorf("write: %v: %s", err, o)
		}
		want := i + 2
		if err := waitFor("a sync", func() bool { return count("0000") >= want }); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second)
	stopRep()
	var repBytes int64
	filepath.Walk(repDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			repBytes += fi.Size()
		}
		return nil
	})
	levels, _ := os.ReadDir(repDir)
	var lv []string
	for _, l := range levels {
		lv = append(lv, fmt.Sprintf("%s: %d files", l.Name(), count(l.Name())))
	}
	logf("replica: %d bytes (%s)", repBytes, strings.Join(lv, ", "))

	work := filepath.Join(c.dir, "w")
	target := filepath.Join(work, "r.db")
	type lcase struct {
		name  string
		argv  []string
		env   []string
		walls []time.Duration
		anon  int64
	}
	cases := []*lcase{
		{name: "sqlite-backup restore s3://… (integrity_check)", argv: []string{c.bin, "restore", "s3://bench/ls", "--to", target}, env: env},
		{name: "litestream restore", argv: []string{ls, "restore", "-config", cfg, "-o", target, src}, env: lsEnv},
		{name: "litestream restore -integrity-check full", argv: []string{ls, "restore", "-config", cfg, "-o", target, "-integrity-check", "full", src}, env: lsEnv},
	}
	for _, b := range parseBases(c.base) {
		cases = append(cases, &lcase{name: b[0] + ": sqlite-backup restore s3://…", argv: []string{b[1], "restore", "s3://bench/ls", "--to", target}, env: env})
	}
	for round := 0; round <= c.rounds; round++ {
		for i := range cases {
			k := cases[(i+round)%len(cases)]
			os.RemoveAll(work)
			os.MkdirAll(work, 0o700)
			d, anon, _, err := runMeasuredEnv(k.argv, k.env)
			if err != nil {
				return fmt.Errorf("%s: %v", k.name, err)
			}
			if round == 0 {
				continue // warm-up
			}
			logf("round %d: %s: %s, RssAnon %s", round, k.name, d.Round(time.Millisecond), humanMB(anon))
			k.walls = append(k.walls, d)
			k.anon = max(k.anon, anon)
		}
	}
	os.RemoveAll(work)
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	fmt.Fprintf(out, "\n### Restore of a Litestream replica of a %s database (%d bytes; replica %d bytes: %s) from loopback versitygw, median of %d interleaved rounds\n\n",
		humanMB(fi.Size()), fi.Size(), repBytes, strings.Join(lv, ", "), c.rounds)
	lsv, _ := exec.Command(ls, "version").Output()
	fmt.Fprintf(out, "%s, %d CPUs; %s; litestream %s\n\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), binVersion(c.bin), strings.TrimSpace(string(lsv)))
	fmt.Fprintf(out, "| case | median | rounds | peak RssAnon |\n|---|---:|---|---:|\n")
	for _, k := range cases {
		var all []string
		for _, w := range k.walls {
			all = append(all, fmt.Sprintf("%.2f", w.Seconds()))
		}
		fmt.Fprintf(out, "| %s | %.2f s | %s | %s |\n", k.name, med(k.walls).Seconds(), strings.Join(all, ", "), humanMB(k.anon))
	}
	r := func(a, b int) float64 { return med(cases[a].walls).Seconds() / med(cases[b].walls).Seconds() }
	fmt.Fprintf(out, "\nours %.2f× litestream restore, %.2f× litestream restore -integrity-check full (target ≤ 1.0×; peak ≤ 64 MB)\n", r(0, 1), r(0, 2))
	for i := 3; i < len(cases); i++ {
		fmt.Fprintf(out, "%s %.2f× litestream restore, %.2f× litestream restore -integrity-check full\n", strings.TrimSuffix(cases[i].name, " restore s3://…"), r(i, 1), r(i, 2))
	}
	return nil
}
