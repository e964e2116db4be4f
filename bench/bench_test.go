package main

import (
	"bytes"
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
