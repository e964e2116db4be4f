package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// With -age the benchmark measures what encryption costs: our backup
// with -r (encrypt, fsync, decrypt again as the proof) against the same
// backup without, and against the age CLI encrypting the same database
// into a file (plus the sync a backup needs), all in one run.
const (
	caseOursAge     = "sqlite-backup -r KEY (encrypt + proof)"
	caseOursAgeZstd = "sqlite-backup -r KEY --compress zstd"
	caseOursZstd    = "sqlite-backup --compress zstd"
	caseAgeCLI      = "age -e -r KEY -o FILE + sync"
	caseAgeCLIZstd  = "zstd -c, piped to age -e -r KEY > FILE, + sync"
	caseAgeCLIDec   = "age -d -i KEY FILE > /dev/null"
)

// ageCases makes a key with age-keygen in dir and returns the cases.
func ageCases(bin, src, ref, dir string) ([]benchCase, error) {
	for _, tool := range []string{"age", "age-keygen", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("-age needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	key := filepath.Join(dir, "age-key.txt")
	os.Remove(key)
	if out, err := exec.Command("age-keygen", "-o", key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("age-keygen: %v: %s", err, out)
	}
	pubB, err := exec.Command("age-keygen", "-y", key).Output()
	if err != nil {
		return nil, fmt.Errorf("age-keygen -y: %v", err)
	}
	pub := strings.TrimSpace(string(pubB))
	out := filepath.Join(dir, "out.db.age")
	sidecars := []string{out, out + ".sha256", out + ".json"}
	enc := filepath.Join(dir, "enc.db.age")
	// The file age -d reads: made once, by the age CLI.
	if o, err := exec.Command("age", "-e", "-r", pub, "-o", enc, ref).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("age -e: %v: %s", err, o)
	}
	cs := []benchCase{
		{name: caseOurs, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out}, want: "integrity_check ok"}}},
		{name: caseOursAge, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out, "-r", pub}, want: "encrypted with age"}}},
		{name: caseAgeCLI, clean: sidecars, steps: []step{
			{label: "age -e", argv: []string{"age", "-e", "-r", pub, "-o", out, ref}},
			{label: "sync FILE", argv: []string{"sync", out}},
		}},
		{name: caseAgeCLIDec, steps: []step{{argv: []string{"age", "-d", "-i", key, "-o", os.DevNull, enc}}}},
		{name: caseOursZstd, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out, "--compress", "zstd"}, want: "integrity_check ok"}}},
		{name: caseOursAgeZstd, clean: sidecars, steps: []step{{argv: []string{bin, "--source", src, "--backup", out, "--compress", "zstd", "-r", pub}, want: "encrypted with age"}}},
		{name: caseAgeCLIZstd, clean: sidecars, steps: []step{
			{label: "zstd piped to age -e", argv: []string{"sh", "-c", `zstd -q -c "$1" | age -e -r "$2" > "$3"`, "sh", ref, pub, out}},
			{label: "sync FILE", argv: []string{"sync", out}},
		}},
	}
	ageKey = pub
	return cs, nil
}

// ageKey is the recipient the age cases encrypt to, for ageBaseCases.
var ageKey string

// ageBaseCases are our age cases for another build (-base), named
// "LABEL: case", so that two builds are timed in one run.
func ageBaseCases(label, bin, src, dir string) []benchCase {
	out := filepath.Join(dir, "out.db.age")
	sidecars := []string{out, out + ".sha256", out + ".json"}
	var cs []benchCase
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{caseOurs, nil, "integrity_check ok"},
		{caseOursAge, []string{"-r", ageKey}, "encrypted with age"},
		{caseOursZstd, []string{"--compress", "zstd"}, "integrity_check ok"},
		{caseOursAgeZstd, []string{"--compress", "zstd", "-r", ageKey}, "encrypted with age"},
	} {
		argv := append([]string{bin, "--source", src, "--backup", out}, c.args...)
		cs = append(cs, benchCase{name: label + ": " + c.name, clean: sidecars, steps: []step{{argv: argv, want: c.want}}})
	}
	return cs
}

// paired is the median, over the rounds in which both ran, of a's time
// less b's, every run counted (set aside or not): the two ran in the
// same round, a minute apart at most, so the host's slower drifts
// cancel, which the difference of two medians of runs from different
// rounds (make-up rounds included) does not.
func paired(a, b *caseResult) (time.Duration, int) {
	at := map[int]time.Duration{}
	for _, s := range b.all() {
		at[s.round] = s.total
	}
	var d []time.Duration
	for _, s := range a.all() {
		if t, ok := at[s.round]; ok {
			d = append(d, s.total-t)
		}
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], len(d)
}

// printAgeCost says what encryption adds to a backup, next to what the
// age CLI takes for the same bytes, for this build and each of labels
// (-base). "zstd" is what -r adds to a --compress zstd backup; "zstd,
// from plain" what -r --compress zstd adds to a plain backup, against
// zstd piped to age.
func printAgeCost(w io.Writer, res []*caseResult, labels []string) {
	line := func(what, with, without, cli, dec string) {
		a, b, c, d := find(res, with), find(res, without), find(res, cli), find(res, dec)
		if a == nil || b == nil || c == nil {
			return
		}
		added := a.median() - b.median()
		fmt.Fprintf(w, "| %s | %s | %s | %s |", what, secs(added), secs(c.median()), fmt.Sprintf("%.2f", added.Seconds()/c.median().Seconds()))
		if d != nil {
			fmt.Fprintf(w, " %.2f |", added.Seconds()/(c.median()+d.median()).Seconds())
		} else {
			fmt.Fprint(w, " – |")
		}
		// CPU time, which sets the pace where other work keeps the
		// cores busy: what -r adds against what the CLI spends.
		addedCPU, cliCPU := a.medianCPU()-b.medianCPU(), c.medianCPU()
		fmt.Fprintf(w, " %s against %s (%.2f) |", secs(addedCPU), secs(cliCPU), addedCPU.Seconds()/cliCPU.Seconds())
		if p, n := paired(a, b); n > 0 {
			fmt.Fprintf(w, " %s (%d rounds): %.2f |\n", secs(p), n, p.Seconds()/c.medianAll().Seconds())
		} else {
			fmt.Fprintln(w, " – |")
		}
	}
	fmt.Fprintln(w, "| encryption | added to our backup (median with − without) | age CLI, same data | added / age CLI | added / (age -e + age -d) | CPU added against the CLI's | paired: median of with − without in the same round, every run, / the CLI over every run |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, l := range append([]string{""}, labels...) {
		p := ""
		if l != "" {
			p = l + ": "
		}
		line(p+"plain", p+caseOursAge, p+caseOurs, caseAgeCLI, caseAgeCLIDec)
		line(p+"zstd", p+caseOursAgeZstd, p+caseOursZstd, caseAgeCLIZstd, "")
		line(p+"zstd, from plain", p+caseOursAgeZstd, p+caseOurs, caseAgeCLIZstd, "")
	}
	fmt.Fprintln(w)
}
