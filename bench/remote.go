package main

import (
	"encoding/json"
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

// benchTB lets the bench start the test servers (internal/testserver).
type benchTB struct {
	cleanups []func()
	dir      string
	n        int
}

func (b *benchTB) Helper()                        {}
func (b *benchTB) Logf(format string, a ...any)   { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
func (b *benchTB) Fatalf(format string, a ...any) { b.done(); panic(fmt.Sprintf(format, a...)) }
func (b *benchTB) Skipf(format string, a ...any)  { b.Fatalf(format, a...) }
func (b *benchTB) Cleanup(f func())               { b.cleanups = append(b.cleanups, f) }
func (b *benchTB) TempDir() string {
	b.n++
	d := filepath.Join(b.dir, fmt.Sprintf("srv%d", b.n))
	if err := os.MkdirAll(d, 0o700); err != nil {
		b.Fatalf("%v", err)
	}
	return d
}

// withoutAWS is this process's environment without the AWS_ variables,
// for the other clients: rclone refuses plain HTTP and Litestream's S3
// client fails at start ("unable to add custom RootCAs") when
// AWS_CA_BUNDLE is set; their S3 settings are given otherwise.
func withoutAWS() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (b *benchTB) done() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// remoteCase is one timed upload per round.
type remoteCase struct {
	name string
	// run uploads and returns the upload's own time when the tool
	// reports it (our --json), else 0 (the wall time is used).
	run   func(round int) (argv []string, env []string, parse func(stdout string) (time.Duration, error))
	times []time.Duration
	walls []time.Duration
	anon  int64
}

// runRemote compares the tool's uploads with OpenSSH sftp and scp and
// with rclone, against the same loopback sshd and versitygw, in one run,
// interleaved, medians.
func runRemote(c config, out io.Writer) (err error) {
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
	for _, tool := range []string{"sftp", "scp", "rclone"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed: run scripts/install-deps.sh", tool)
		}
	}
	// The baselines send our backup file itself: the same bytes.
	ref := filepath.Join(c.dir, "ref")
	os.Mkdir(ref, 0o700)
	if o, err := exec.Command(c.bin, "--source", src, "--backup-dir", ref, "--keep", "0", "--json").Output(); err != nil {
		return fmt.Errorf("reference backup: %v", err)
	} else {
		var r struct {
			Results []struct{ Path string } `json:"results"`
		}
		if err := json.Unmarshal(o, &r); err != nil || len(r.Results) != 1 || r.Results[0].Path == "" {
			return fmt.Errorf("reference backup: no path in its --json (%v): %.200s", err, o)
		}
		ref = r.Results[0].Path
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return err
	}

	sd := testserver.StartSSHD(tb)
	s3 := testserver.StartS3(tb)
	s3.MakeBucket(tb, "bench")
	env := os.Environ()
	env = append(env, s3.Env()...)
	env = append(env, "HOME="+tb.TempDir(), "SSH_AUTH_SOCK=")
	sshOpts := []string{"-i", sd.Key, "-o", "UserKnownHostsFile=" + sd.KnownHosts, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"}
	rcloneEnv := append(withoutAWS(), "RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Other",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+s3.Access, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+s3.Secret,
		"RCLONE_CONFIG_BENCH_ENDPOINT="+s3.Endpoint(), "RCLONE_CONFIG_BENCH_REGION=us-east-1")

	ours := func(url string) func(int) ([]string, []string, func(string) (time.Duration, error)) {
		return func(round int) ([]string, []string, func(string) (time.Duration, error)) {
			bdir := filepath.Join(c.dir, "b")
			os.RemoveAll(bdir)
			os.Mkdir(bdir, 0o700)
			argv := []string{c.bin, "--source", src, "--backup-dir", bdir, "--keep", "0", "--json", "--remote", url, "--ssh-key", sd.Key, "--known-hosts", sd.KnownHosts}
			return argv, env, func(stdout string) (time.Duration, error) {
				// The --json report holds one result per source, each
				// with its remotes.
				var rep struct {
					Results []struct {
						Remotes []struct {
							Uploaded   []string `json:"uploaded"`
							DurationMS int64    `json:"duration_ms"`
							Error      string   `json:"error"`
						} `json:"remotes"`
					} `json:"results"`
				}
				err := json.Unmarshal([]byte(stdout), &rep)
				if err != nil || len(rep.Results) != 1 || len(rep.Results[0].Remotes) != 1 || len(rep.Results[0].Remotes[0].Uploaded) != 1 {
					return 0, fmt.Errorf("unexpected output %q (%v)", stdout, err)
				}
				return time.Duration(rep.Results[0].Remotes[0].DurationMS) * time.Millisecond, nil
			}
		}
	}
	target := "root@127.0.0.1"
	if sd.User != "" {
		target = sd.User + "@127.0.0.1"
	}
	cases := []*remoteCase{
		{name: "sqlite-backup → sftp", run: ours(sd.URL())},
		{name: "OpenSSH sftp put", run: func(round int) ([]string, []string, func(string) (time.Duration, error)) {
			batch := filepath.Join(c.dir, "batch")
			os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/sftp.copy\n", ref, sd.Dir)), 0o600)
			return append(append([]string{"sftp", "-q", "-b", batch, "-P", fmt.Sprint(sd.Port)}, sshOpts...), target), env, nil
		}},
		{name: "OpenSSH sftp put -f (fsync)", run: func(round int) ([]string, []string, func(string) (time.Duration, error)) {
			batch := filepath.Join(c.dir, "batch")
			os.WriteFile(batch, []byte(fmt.Sprintf("put -f %s %s/sftp.copy\n", ref, sd.Dir)), 0o600)
			return append(append([]string{"sftp", "-q", "-b", batch, "-P", fmt.Sprint(sd.Port)}, sshOpts...), target), env, nil
		}},
		{name: "OpenSSH scp", run: func(round int) ([]string, []string, func(string) (time.Duration, error)) {
			return append(append([]string{"scp", "-q", "-P", fmt.Sprint(sd.Port)}, sshOpts...), ref, target+":"+sd.Dir+"/scp.copy"), env, nil
		}},
		{name: "sqlite-backup → s3", run: ours("s3://bench/ours")},
		{name: "rclone copy → s3", run: func(round int) ([]string, []string, func(string) (time.Duration, error)) {
			os.RemoveAll(filepath.Join(s3.Dir, "bench", "rclone"))
			return []string{"rclone", "copy", "--s3-no-check-bucket", ref, "bench:bench/rclone/"}, rcloneEnv, nil
		}},
	}
	clean := func() {
		for _, d := range []string{sd.Dir, filepath.Join(s3.Dir, "bench", "ours")} {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				os.RemoveAll(filepath.Join(d, e.Name()))
			}
		}
	}
	for round := 0; round <= c.rounds; round++ {
		// Rotate the order each round so no case always follows another.
		for i := range cases {
			k := cases[(i+round)%len(cases)]
			clean()
			argv, cenv, parse := k.run(round)
			d, anon, stdout, err := runMeasuredEnv(argv, cenv)
			if err != nil {
				return err
			}
			up := d
			if parse != nil {
				if up, err = parse(stdout); err != nil {
					return fmt.Errorf("%s: %v", k.name, err)
				}
			}
			if round == 0 {
				continue // warm-up
			}
			logf("round %d: %s: %s (process %s)", round, k.name, up.Round(time.Millisecond), d.Round(time.Millisecond))
			k.times = append(k.times, up)
			k.walls = append(k.walls, d)
			k.anon = max(k.anon, anon)
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	fmt.Fprintf(out, "\n### Upload of a %s backup (%d bytes) to loopback servers, median of %d interleaved rounds\n\n", humanMB(fi.Size()), fi.Size(), c.rounds)
	fmt.Fprintf(out, "%s, %d CPUs; %s; OpenSSH %s; %s; versitygw v1.8.0\n\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), binVersion(c.bin), sshVersion(), rcloneVersion())
	fmt.Fprintf(out, "| case | upload | process wall | peak RssAnon |\n|---|---:|---:|---:|\n")
	for _, k := range cases {
		fmt.Fprintf(out, "| %s | %.2f s | %.2f s | %s |\n", k.name, med(k.times).Seconds(), med(k.walls).Seconds(), humanMB(k.anon))
	}
	ratio := func(a, b int) float64 { return med(cases[a].times).Seconds() / med(cases[b].times).Seconds() }
	fmt.Fprintf(out, "\nsftp: %.2f× OpenSSH sftp, %.2f× sftp put -f (which fsyncs, as we do), %.2f× scp (target ≤ 1.25×); s3: %.2f× rclone copy (target ≤ 1.25×)\n", ratio(0, 1), ratio(0, 2), ratio(0, 3), ratio(4, 5))
	fmt.Fprintf(out, "\n(\"upload\" for sqlite-backup is the remote's duration_ms from --json: listing, upload, the check of the upload, sidecars; for the others the process's wall time. \"process wall\" of sqlite-backup includes taking and verifying the backup.)\n")
	return nil
}

func runMeasuredEnv(argv, env []string) (time.Duration, int64, string, error) {
	old := os.Environ()
	os.Clearenv()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	defer func() {
		os.Clearenv()
		for _, kv := range old {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
	}()
	d, anon, _, stdout, err := runMeasured(argv)
	return d, anon, stdout, err
}

func sshVersion() string {
	o, _ := exec.Command("ssh", "-V").CombinedOutput()
	return strings.TrimSpace(strings.SplitN(string(o), ",", 2)[0])
}

func rcloneVersion() string {
	o, _ := exec.Command("rclone", "version").Output()
	return strings.TrimSpace(strings.SplitN(string(o), "\n", 2)[0])
}
