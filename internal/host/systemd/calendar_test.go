package systemd

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"sqlite-backup/internal/host/passwd"
)

// Known answers, from systemd.time(7) and systemd-analyze calendar 252.
func TestCheckCalendar(t *testing.T) {
	for _, c := range []struct {
		expr string
		ok   bool
	}{
		{"daily", true}, {"Daily", true}, {"weekly", true}, {"semi-annually", true}, {"quarterly", true},
		{"fortnightly", false}, {"", false}, {" daily", false}, {"daily ", false},
		{"*-*-* 02:30", true}, {"02:30", true}, {"*:0/15", true}, {"Mon..Fri 02:00", true}, {"Mon-Fri 02:00", true},
		{"Sat,Sun *-*-* 10:00", true}, {"*-02~03", true}, {"*-*-* 02:30 UTC", true}, {"daily UTC", true},
		{"12:60", false}, {"24:00", false}, {"1969-01-01", false}, {"5..3:00", false}, {"*:*:1.5", true},
		{"Fri..Mon", false}, {"Mon..", false}, {"Mond 02:00", false}, {"*-*-* 02:30:60", false},
		{"@1700000000", true}, {"@99999999999", false}, {"2024-02-30", true}, {"*-*~29", false}, {"*-*~28", true},
		{"*:0/0", false}, {"*:*:45.", false}, {"Sunday ", true}, {"2..2:00", true}, {"8..14/7:00", true}, {"*-*~27,28", false}, {"*-*~3,5", true}, {"1,2,3:00", true}, {"UTC", false}, {"*-*-* 02:30 Mars/Olympus", false},
	} {
		err := CheckCalendar(c.expr)
		if (err == nil) != c.ok {
			t.Errorf("CheckCalendar(%q) = %v, want ok %v", c.expr, err, c.ok)
		}
	}
}

// TestCheckCalendarAgainstSystemd is the differential test: systemd's
// own parser (systemd-analyze calendar) and CheckCalendar must agree on
// every generated expression, valid or not.
func TestCheckCalendarAgainstSystemd(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIP: no systemd-analyze (apt-get install systemd)")
	}
	if out, err := exec.Command(sa, "calendar", "daily").CombinedOutput(); err != nil {
		t.Skipf("SKIP: systemd-analyze calendar does not run here: %v %s", err, out)
	}
	n := 5000
	if s := os.Getenv("SQLITE_BACKUP_CALENDAR_CASES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	r := rand.New(rand.NewPCG(21, uint64(n)))
	exprs := make([]string, n)
	for i := range exprs {
		exprs[i] = genCalendar(r)
	}
	valid, disagree := 0, 0
	// In batches: systemd-analyze goes on after an expression it
	// refuses, printing "Original form: EXPR" for each it takes and
	// "Failed to parse calendar specification 'EXPR'" for the others.
	for len(exprs) > 0 {
		batch := exprs[:min(len(exprs), 250)]
		exprs = exprs[len(batch):]
		cmd := exec.Command(sa, append([]string{"calendar", "--"}, batch...)...)
		cmd.Env = append(os.Environ(), "TZ=UTC", "SYSTEMD_COLORS=0")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run() // exit 1 when any was refused
		ok, refused := map[string]bool{}, map[string]bool{}
		for _, l := range strings.Split(stdout.String(), "\n") {
			// "Original form" is left out when it is the normalized one.
			l = strings.TrimLeft(l, " ")
			for _, prefix := range []string{"Original form: ", "Normalized form: "} {
				if e, found := strings.CutPrefix(l, prefix); found {
					ok[e] = true
				}
			}
		}
		for _, l := range strings.Split(stderr.String(), "\n") {
			if e, found := strings.CutPrefix(l, "Failed to parse calendar specification '"); found {
				if i := strings.LastIndex(e, "': "); i >= 0 {
					refused[e[:i]] = true
				}
			}
			// Parsed, but no next elapse found (a zone's quirk): the
			// syntax is accepted, which is what CheckCalendar judges.
			if e, found := strings.CutPrefix(l, "Failed to determine next elapse for '"); found {
				if i := strings.LastIndex(e, "': "); i >= 0 {
					ok[e[:i]] = true
				}
			}
		}
		for _, expr := range batch {
			// It shows the original form without surrounding spaces.
			taken := ok[expr] || ok[strings.TrimSpace(expr)]
			if !taken && !refused[expr] {
				t.Fatalf("%q: systemd-analyze's answer not found (ok %v, refused %v)\n%s\n%s", expr, taken, refused[expr], stdout.String(), stderr.String())
			}
			theirs := !refused[expr]
			ours := CheckCalendar(expr)
			if theirs {
				valid++
			}
			if theirs != (ours == nil) {
				disagree++
				t.Errorf("%q: systemd-analyze ok=%v, CheckCalendar: %v", expr, theirs, ours)
			}
		}
	}
	t.Logf("%d expressions, %d valid for systemd, %d disagreements", n, valid, disagree)
	if valid < n/5 || valid > n*4/5 {
		t.Errorf("generator: %d of %d valid; want a mix to test both sides", valid, n)
	}
}

func genCalendar(r *rand.Rand) string {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	if r.IntN(10) == 0 {
		s := pick("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
			"semiannually", "semi-annually", "biannually", "fortnightly", "nightly", "Daily", "HOURLY", "now", "today")
		if r.IntN(4) == 0 {
			s += pick(" UTC", " utc", " ", "")
		}
		return mutate(r, s)
	}
	if r.IntN(20) == 0 {
		return mutate(r, "@"+strconv.FormatInt(r.Int64N(8_000_000_000), 10))
	}
	var parts []string
	if r.IntN(3) == 0 {
		days := []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Monday", "friday", "SUN", "Sunday"}
		w := pick(days...)
		for k := r.IntN(3); k > 0; k-- {
			w += pick(",", "..", "-", ",") + pick(days...)
		}
		parts = append(parts, w)
	}
	field := func(lo, hi int, seconds bool) string {
		one := func() string {
			if r.IntN(6) == 0 {
				return "*"
			}
			v := lo + r.IntN(hi-lo+3) - 1
			if v < 0 {
				v = 0
			}
			s := strconv.Itoa(v)
			if hi > 100 && r.IntN(3) == 0 {
				s = strconv.Itoa(r.IntN(100)) // a two-digit year
			}
			if seconds && r.IntN(4) == 0 {
				s += "." + strconv.Itoa(r.IntN(1000))
			}
			if r.IntN(4) == 0 {
				s += ".." + strconv.Itoa(lo+r.IntN(hi-lo+2))
			}
			if r.IntN(4) == 0 {
				s += "/" + strconv.Itoa(r.IntN(hi-lo+2))
			}
			return s
		}
		s := one()
		for k := r.IntN(3); k > 0 && s != "*"; k-- {
			if n := one(); n != "*" {
				s += "," + n
			}
		}
		return s
	}
	if r.IntN(3) > 0 {
		d := field(1, 31, false)
		sep := pick("-", "-", "-", "~")
		d = field(1, 12, false) + sep + d
		if r.IntN(2) == 0 {
			d = field(1970, 2199, false) + pick("-", "-", "~") + d
		}
		parts = append(parts, d)
	}
	if r.IntN(4) > 0 || len(parts) == 0 {
		tm := field(0, 23, false) + ":" + field(0, 59, false)
		if r.IntN(2) == 0 {
			tm += ":" + field(0, 59, true)
		}
		parts = append(parts, tm)
	}
	s := strings.Join(parts, pick(" ", " ", " ", "  "))
	if r.IntN(8) == 0 {
		s += pick(" UTC", " Europe/Berlin", " America/New_York", " Mars/Olympus", " utc")
	}
	return mutate(r, s)
}

// mutate sometimes inserts, deletes or replaces one character.
func mutate(r *rand.Rand, s string) string {
	if r.IntN(4) != 0 || s == "" {
		return s
	}
	const chars = " ,.-~:/*0123456789aMU@"
	i := r.IntN(len(s) + 1)
	c := string(chars[r.IntN(len(chars))])
	switch r.IntN(3) {
	case 0:
		return s[:i] + c + s[i:]
	case 1:
		if i < len(s) {
			return s[:i] + s[i+1:]
		}
	}
	if i < len(s) {
		return s[:i] + c + s[i+1:]
	}
	return s
}

func TestCheckUser(t *testing.T) {
	dir := t.TempDir()
	passwd.File = dir + "/passwd"
	defer func() { passwd.File = "/etc/passwd" }()
	if err := os.WriteFile(passwd.File, []byte("root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{{"", true}, {"root", true}, {"app", true}, {"1234", true}, {"nosuchuser", false}, {"ap", false}, {"a:b", false}, {"-x", false}} {
		if err := CheckUser(c.name); (err == nil) != c.ok {
			t.Errorf("CheckUser(%q) = %v, want ok %v", c.name, err, c.ok)
		}
	}
}
