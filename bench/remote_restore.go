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

// With -remote -restore the benchmark times restore and verify of a
// backup on a remote (loopback sshd and versitygw) against downloading
// it by hand (rclone copy, OpenSSH sftp get: the backup and its
// sidecars, the same bytes ours fetches) followed by our local restore
// or verify of the download, in one run, interleaved, medians.
func runRemoteRestore(c config, out io.Writer) (err error) {
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
	for _, tool := range []string{"sftp", "rclone"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed: run scripts/install-deps.sh", tool)
		}
	}

	sd := testserver.StartSSHD(tb)
	s3 := testserver.StartS3(tb)
	s3.MakeBucket(tb, "bench")
	env := append(os.Environ(), s3.Env()...)
	env = append(env, "HOME="+tb.TempDir(), "SSH_AUTH_SOCK=")
	keyFlags := []string{"--ssh-key", sd.Key, "--known-hosts", sd.KnownHosts}
	sshOpts := []string{"-i", sd.Key, "-o", "UserKnownHostsFile=" + sd.KnownHosts, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"}
	rcloneEnv := append(withoutAWS(), "RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Other",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+s3.Access, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+s3.Secret,
		"RCLONE_CONFIG_BENCH_ENDPOINT="+s3.Endpoint(), "RCLONE_CONFIG_BENCH_REGION=us-east-1")

	// One backup, sent to both remotes by the tool itself.
	bdir := filepath.Join(c.dir, "b")
	os.RemoveAll(bdir)
	os.Mkdir(bdir, 0o700)
	sftpURL, s3URL := sd.URL(), "s3://bench/ours"
	argv := append([]string{c.bin, "--source", src, "--backup-dir", bdir, "--keep", "1", "--json", "--remote", sftpURL, "--remote", s3URL}, keyFlags...)
	if _, _, _, err := runMeasuredEnv(argv, env); err != nil {
		return fmt.Errorf("backup to %s and %s: %v", sftpURL, s3URL, err)
	}
	ents, _ := filepath.Glob(filepath.Join(bdir, "*.sha256"))
	if len(ents) != 1 {
		return fmt.Errorf("want one backup in %s, found %v", bdir, ents)
	}
	name := filepath.Base(strings.TrimSuffix(ents[0], ".sha256"))
	fi, err := os.Stat(filepath.Join(bdir, name))
	if err != nil {
		return err
	}

	work := filepath.Join(c.dir, "w")
	dl := filepath.Join(work, "dl")
	target := filepath.Join(work, "r.db")
	restoreLocal := []string{c.bin, "restore", filepath.Join(dl, name), "--to", target}
	// verify's temp files go to a private dir: /tmp is shared with
	// other runs of this tool.
	verifyLocal := []string{c.bin, "verify", "--temp-dir", work, filepath.Join(dl, name)}
	sftpTarget := "root@127.0.0.1"
	if sd.User != "" {
		sftpTarget = sd.User + "@127.0.0.1"
	}
	sftpGet := func() []string {
		batch := filepath.Join(c.dir, "batch")
		os.WriteFile(batch, []byte(fmt.Sprintf("get %s/%s* %s/\n", sd.Dir, name, dl)), 0o600)
		return append(append([]string{"sftp", "-q", "-b", batch, "-P", fmt.Sprint(sd.Port)}, sshOpts...), sftpTarget)
	}
	rcloneGet := []string{"rclone", "copy", "--s3-no-check-bucket", "--include", name + "*", "bench:bench/ours/", dl}
	type tstep struct {
		argv []string
		env  []string
	}
	type rcase struct {
		name  string
		steps []tstep
		times [][]time.Duration // per step
		walls []time.Duration
		anon  int64
	}
	ours := func(argv ...string) []tstep { return []tstep{{argv, env}} }
	cases := []*rcase{
		{name: "sqlite-backup restore s3://…/NAME", steps: ours(append([]string{c.bin, "restore", s3URL + "/" + name, "--to", target}, keyFlags...)...)},
		{name: "rclone copy + local restore", steps: []tstep{{rcloneGet, rcloneEnv}, {restoreLocal, env}}},
		{name: "sqlite-backup restore sftp://…/NAME", steps: ours(append([]string{c.bin, "restore", sftpURL + "/" + name, "--to", target}, keyFlags...)...)},
		{name: "OpenSSH sftp get + local restore", steps: []tstep{{sftpGet(), env}, {restoreLocal, env}}},
		{name: "sqlite-backup verify s3://…/NAME", steps: ours(append([]string{c.bin, "verify", "--temp-dir", work, s3URL + "/" + name}, keyFlags...)...)},
		{name: "rclone copy + local verify", steps: []tstep{{rcloneGet, rcloneEnv}, {verifyLocal, env}}},
		{name: "sqlite-backup verify sftp://…/NAME", steps: ours(append([]string{c.bin, "verify", "--temp-dir", work, sftpURL + "/" + name}, keyFlags...)...)},
		{name: "OpenSSH sftp get + local verify", steps: []tstep{{sftpGet(), env}, {verifyLocal, env}}},
	}
	for round := 0; round <= c.rounds; round++ {
		for i := range cases {
			k := cases[(i+round)%len(cases)]
			os.RemoveAll(work)
			os.MkdirAll(dl, 0o700)
			var total time.Duration
			var per []time.Duration
			for _, s := range k.steps {
				d, anon, _, err := runMeasuredEnv(s.argv, s.env)
				if err != nil {
					return fmt.Errorf("%s: %v", k.name, err)
				}
				total += d
				per = append(per, d)
				if len(k.steps) == 1 || strings.HasPrefix(filepath.Base(s.argv[0]), "sqlite-backup") || s.argv[0] == c.bin {
					k.anon = max(k.anon, anon)
				}
			}
			if round == 0 {
				continue // warm-up
			}
			logf("round %d: %s: %s %v", round, k.name, total.Round(time.Millisecond), per)
			k.walls = append(k.walls, total)
			k.times = append(k.times, per)
		}
	}
	os.RemoveAll(work)
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	fmt.Fprintf(out, "\n### Restore and verify of a %s backup (%d bytes) from loopback servers, median of %d interleaved rounds\n\n", humanMB(fi.Size()), fi.Size(), c.rounds)
	fmt.Fprintf(out, "%s, %d CPUs; %s; OpenSSH %s; %s\n\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), binVersion(c.bin), sshVersion(), rcloneVersion())
	fmt.Fprintf(out, "| case | median | steps (median each) | peak RssAnon (ours) |\n|---|---:|---|---:|\n")
	for _, k := range cases {
		var parts []string
		for j := range k.steps {
			var ds []time.Duration
			for _, t := range k.times {
				ds = append(ds, t[j])
			}
			parts = append(parts, fmt.Sprintf("%.2f s", med(ds).Seconds()))
		}
		fmt.Fprintf(out, "| %s | %.2f s | %s | %s |\n", k.name, med(k.walls).Seconds(), strings.Join(parts, " + "), humanMB(k.anon))
	}
	ratio := func(a, b int) float64 { return med(cases[a].walls).Seconds() / med(cases[b].walls).Seconds() }
	fmt.Fprintf(out, "\nrestore: s3 %.2f× rclone copy + local restore, sftp %.2f× sftp get + local restore; verify: s3 %.2f×, sftp %.2f× (target ≤ 1.0×)\n", ratio(0, 1), ratio(2, 3), ratio(4, 5), ratio(6, 7))
	return nil
}
