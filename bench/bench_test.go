package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole benchmark on a 4 MB database, one round, so CI
// proves the program still works without paying for the real thing. It
// checks the report's shape, never a time.
func TestSmoke(t *testing.T) {
	var out bytes.Buffer
	c := config{sizeMB: 4, rounds: 1, dir: t.TempDir(), writer: true, interval: 5 * time.Millisecond, smoke: true}
	if err := run(c, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"| " + caseCpSync + " |",
		"| " + caseCBackupIC + " |",
		"| " + caseOurs + " |",
		"| " + caseOursVerQ + " |",
		caseOurs + " / " + caseCBackupIC,
		"| idle |",
		"| during sqlite-backup |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "writer error") {
		t.Errorf("writer failed commits:\n%s", s)
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t 10000 kB\nRssAnon:\t    1536 kB\nRssFile:\t 8000 kB\n"
	anon, hwm, ok := parseStatus(strings.NewReader(in))
	if !ok || anon != 1536*1024 || hwm != 20480*1024 {
		t.Fatalf("parseStatus = %d, %d, %v", anon, hwm, ok)
	}
}

// TestDisturbedRoundsRerun fakes the kernel's count of memory handed back
// to the host with a file that one case's command bumps, and checks that
// exactly those rounds are set aside and made up by extra rounds.
func TestDisturbedRoundsRerun(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "reported_kib")
	if err := os.WriteFile(counter, []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := reportedKiB
	reportedKiB = counter
	t.Cleanup(func() { reportedKiB = old })

	// hands back 40 MiB on the runs numbered in $2 (1 is the warm-up),
	// and counts its runs in the file $1.
	const host = `n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 )); echo $n > "$1"
case " $2 " in *" $n "*) echo $(( $(cat "$3") + 40960 )) > "$3";; esac`
	bump := func(name, runs string) benchCase {
		return benchCase{name: name, steps: []step{{argv: []string{"sh", "-c", host, "sh", filepath.Join(dir, name), runs, counter}}}}
	}
	cases := []benchCase{
		bump("quiet", ""),
		bump("twice", "2 3"), // the first two timed rounds
		bump("always", "1 2 3 4 5 6 7 8 9 10"),
	}
	res, err := runRounds(cases, 2, 0, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	runs := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for i, want := range []struct {
		runs              string
		counted, setAside int
	}{
		{"3", 2, 0}, // warm-up and 2 rounds
		{"5", 2, 2}, // 2 set aside, made up in rounds 3 and 4
		{"7", 6, 6}, // never undisturbed: 3×2 rounds, then its medians take them all
	} {
		r := res[i]
		if got := runs(r.c.name); got != want.runs {
			t.Errorf("%s ran %s times, want %s", r.c.name, got, want.runs)
		}
		if len(r.counted()) != want.counted || len(r.disturbed) != want.setAside {
			t.Errorf("%s: %d counted, %d set aside; want %d, %d", r.c.name, len(r.counted()), len(r.disturbed), want.counted, want.setAside)
		}
	}
	for _, s := range res[0].samples {
		if s.handedBack != 0 {
			t.Errorf("quiet: %d bytes handed back, want 0", s.handedBack)
		}
	}

	// Without the kernel's count nothing is set aside.
	reportedKiB = filepath.Join(dir, "absent")
	res, err = runRounds(cases[1:2], 2, 0, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].samples) != 2 || len(res[0].disturbed) != 0 || res[0].samples[0].handedBack != -1 {
		t.Errorf("without a count: %d counted, %d set aside, handedBack %d", len(res[0].samples), len(res[0].disturbed), res[0].samples[0].handedBack)
	}
}

// TestShuffledRounds checks that with a seed every timed round runs
// every case once, and not always in the same order.
func TestShuffledRounds(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "order")
	var cases []benchCase
	for _, name := range []string{"a", "b", "c", "d"} {
		cases = append(cases, benchCase{name: name, steps: []step{{argv: []string{"sh", "-c", `echo "$1" >> "$2"`, "sh", name, log}}}})
	}
	if _, err := runRounds(cases, 6, 7, t.Logf); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	runs := strings.Fields(string(b))
	if len(runs) != 4*7 {
		t.Fatalf("%d runs, want 28 (warm-up and 6 rounds of 4): %v", len(runs), runs)
	}
	orders := map[string]bool{}
	for i := 0; i < len(runs); i += 4 {
		round := slices.Clone(runs[i : i+4])
		orders[strings.Join(round, "")] = true
		slices.Sort(round)
		if strings.Join(round, "") != "abcd" {
			t.Errorf("round %d ran %v, want each case once", i/4, runs[i:i+4])
		}
	}
	if len(orders) < 3 {
		t.Errorf("only %d different orders in 7 rounds: %v", len(orders), runs)
	}
}
