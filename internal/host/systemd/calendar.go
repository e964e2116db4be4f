package systemd

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// CheckCalendar reports whether systemd would accept expr as an
// OnCalendar= value, without systemd: a timer it refuses never runs, and
// `systemctl enable` says so only on the server, after the unit is
// installed. It follows systemd's calendar syntax (systemd.time(7)):
// a named schedule (minutely, hourly, daily, weekly, monthly, yearly,
// annually, quarterly, semiannually, …), or
//
//	[WEEKDAYS] [[YEAR-]MONTH-DAY | MONTH~DAY] [HOUR:MINUTE[:SECOND]] [TIMEZONE]
//
// where each number may be *, a list a,b, a range a..b and a repetition
// /n, ~ counts days from the end of the month, or @UNIXTIME. Values must be
// in range after systemd's normalisation (two-digit years, ranges cut
// to a multiple of their step). calendar_test.go checks it against
// `systemd-analyze calendar` over generated expressions.
func CheckCalendar(expr string) error {
	if err := checkCalendar(expr); err != nil {
		return fmt.Errorf("schedule %q is not a systemd calendar expression: %w", expr, err)
	}
	return nil
}

var (
	errSyntax = errors.New("not in the syntax of systemd.time(7)")
	errRange  = errors.New("a value is out of range")
)

// named are the schedules systemd knows by name (case does not matter).
var named = []string{"minutely", "hourly", "daily", "monthly", "weekly", "yearly", "annually", "anually",
	"quarterly", "semiannually", "semi-annually", "biannually", "bi-annually"}

func checkCalendar(p string) error {
	if s, ok := cutSuffixFold(p, " UTC"); ok {
		p = s
	} else if s, ok := cutLocalZone(p); ok {
		p = s
	} else if i := strings.LastIndexByte(p, ' '); i >= 0 && validZone(p[i+1:]) {
		p = p[:i]
	}
	if p == "" {
		return errors.New("empty")
	}
	for _, n := range named {
		if strings.EqualFold(p, n) {
			return nil
		}
	}
	var c spec
	rest, err := c.weekdays(p)
	if err != nil {
		return err
	}
	rest, done, err := c.date(rest)
	if err != nil {
		return err
	}
	if !done {
		if rest, err = c.time(rest); err != nil {
			return err
		}
	}
	if rest != "" {
		return errSyntax
	}
	return c.valid()
}

// component is one element of a list: start, optional ..stop (-1: none)
// and /repeat (0: none). Seconds are in microseconds, as systemd keeps them.
type component struct{ start, stop, repeat int64 }

type spec struct {
	year, month, day, hour, minute, usec []component // nil: *
	endOfMonth                           bool
}

const usecPerSec = 1_000_000

var weekdayNames = []string{"monday", "mon", "tuesday", "tue", "wednesday", "wed", "thursday", "thu",
	"friday", "fri", "saturday", "sat", "sunday", "sun"}

// weekdays consumes a leading weekday list such as "Mon..Fri" or
// "Sat,Sun"; none at all is fine.
func (c *spec) weekdays(p string) (string, error) {
	prev := -1 // start of an open range
	first := true
	for {
		found := -1
		for i, n := range weekdayNames {
			if len(p) >= len(n) && strings.EqualFold(p[:len(n)], n) {
				if len(p) > len(n) && !strings.ContainsRune("-., ", rune(p[len(n)])) {
					return "", errSyntax
				}
				found = i / 2
				p = p[len(n):]
				break
			}
		}
		if found < 0 {
			if first {
				return p, nil
			}
			return "", errSyntax
		}
		if prev >= 0 && prev > found {
			return "", errors.New("a weekday range runs backwards")
		}
		switch {
		case p == "":
			return p, nil
		case p[0] == ' ':
			return strings.TrimLeft(p, " "), nil
		case p[0] == '.':
			if prev >= 0 || len(p) < 2 || p[1] != '.' {
				return "", errSyntax
			}
			prev, p = found, p[2:]
		case p[0] == '-':
			if prev >= 0 {
				return "", errSyntax
			}
			prev, p = found, p[1:]
		case p[0] == ',':
			prev, p = -1, p[1:]
		}
		if p == "" || p[0] == ' ' {
			if prev >= 0 {
				return "", errors.New("a weekday range is left open")
			}
			return strings.TrimLeft(p, " "), nil
		}
		first = false
	}
}

// date consumes [YEAR-]MONTH-DAY, MONTH~DAY or @UNIXTIME; done says the
// expression ends there (@ takes no time).
func (c *spec) date(p string) (rest string, done bool, err error) {
	if p == "" {
		return p, false, nil
	}
	if p[0] == '@' {
		return c.unixTime(p[1:])
	}
	t := p
	first, t, err := chain(t, false)
	if err != nil {
		return "", false, err
	}
	if t == "" || t[0] == ':' {
		return p, false, nil // it was a time
	}
	if err := c.dateSep(t[0]); err != nil {
		return "", false, err
	}
	second, t, err := chain(t[1:], false)
	if err != nil {
		return "", false, err
	}
	if t == "" || t[0] == ' ' {
		c.month, c.day = first, second
		return strings.TrimLeft(t, " "), false, nil
	}
	if c.endOfMonth {
		return "", false, errSyntax
	}
	if err := c.dateSep(t[0]); err != nil {
		return "", false, err
	}
	third, t, err := chain(t[1:], false)
	if err != nil {
		return "", false, err
	}
	if t != "" && t[0] != ' ' {
		return "", false, errSyntax
	}
	c.year, c.month, c.day = first, second, third
	return strings.TrimLeft(t, " "), false, nil
}

// maxUnix is 2200-01-01 00:00:00 UTC: systemd's calendar ends in 2199.
const maxUnix = 7258118400

// dateSep reads the separator before a date's next field: "-", or "~",
// which counts the day from the end of the month.
func (c *spec) dateSep(b byte) error {
	switch b {
	case '~':
		c.endOfMonth = true
	case '-':
	default:
		return errSyntax
	}
	return nil
}

func (c *spec) unixTime(p string) (string, bool, error) {
	p = strings.TrimLeft(p, " \t\n\v\f\r") // as strtoul
	neg := false
	if p != "" && (p[0] == '+' || p[0] == '-') {
		neg, p = p[0] == '-', p[1:]
	}
	n := 0
	var v uint64
	overflow := false
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		d := uint64(p[n] - '0')
		if v > (math.MaxUint64-d)/10 {
			overflow = true
		}
		v = v*10 + d
		n++
	}
	if n == 0 {
		return "", false, errSyntax
	}
	if overflow || (neg && v != 0) || v >= maxUnix {
		return "", false, errRange
	}
	return p[n:], true, nil
}

// time consumes HOUR:MINUTE[:SECOND]; nothing means 00:00:00.
func (c *spec) time(p string) (string, error) {
	if p == "" {
		return p, nil
	}
	var err error
	if c.hour, p, err = chain(p, false); err != nil {
		return "", err
	}
	if p == "" || p[0] != ':' {
		return "", errSyntax
	}
	if c.minute, p, err = chain(p[1:], false); err != nil {
		return "", err
	}
	if p == "" {
		return p, nil
	}
	if p[0] != ':' {
		return "", errSyntax
	}
	if c.usec, p, err = chain(p[1:], true); err != nil {
		return "", err
	}
	return p, nil
}

// chain parses "*" or a comma list of components; usec for seconds.
func chain(p string, usec bool) ([]component, string, error) {
	if p != "" && p[0] == '*' {
		if usec {
			return []component{{0, -1, usecPerSec}}, p[1:], nil
		}
		return nil, p[1:], nil
	}
	var out []component
	for n := 0; ; n++ {
		if n > 240 { // systemd's limit on a list
			return nil, "", errors.New("too many values in a list")
		}
		cc := component{stop: -1}
		var err error
		if cc.start, p, err = decimal(p, usec); err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(p, "..") {
			if cc.stop, p, err = decimal(p[2:], usec); err != nil {
				return nil, "", err
			}
			cc.repeat = 1
			if usec {
				cc.repeat = usecPerSec
			}
		}
		if p != "" && p[0] == '/' {
			if cc.repeat, p, err = decimal(p[1:], usec); err != nil {
				return nil, "", err
			}
			if cc.repeat == 0 {
				return nil, "", errors.New("a repetition of 0")
			}
		} else if usec && cc.stop >= 0 && cc.start+cc.repeat > cc.stop {
			// A range of seconds without a step steps by 1s: it must
			// hold two.
			return nil, "", errRange
		}
		if p != "" && !strings.ContainsRune(" ,-~:", rune(p[0])) {
			return nil, "", errSyntax
		}
		out = append(out, cc)
		if p == "" || p[0] != ',' {
			return out, p, nil
		}
		p = p[1:]
	}
}

// decimal parses digits (and for seconds a fraction of up to six
// significant digits).
func decimal(p string, usec bool) (int64, string, error) {
	n := 0
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, "", errSyntax
	}
	var v int64
	for _, d := range p[:n] {
		v = v*10 + int64(d-'0')
		if v > math.MaxInt32 {
			return 0, "", errRange
		}
	}
	p = p[n:]
	if usec {
		v *= usecPerSec
		if len(p) >= 1 && p[0] == '.' && (len(p) < 2 || p[1] != '.') {
			p = p[1:]
			if p == "" || p[0] < '0' || p[0] > '9' {
				return 0, "", errSyntax // "45." is not a second
			}
			var frac int64
			digits := 0
			for len(p) > 0 && p[0] >= '0' && p[0] <= '9' {
				if digits < 6 {
					frac = frac*10 + int64(p[0]-'0')
					digits++
				}
				p = p[1:]
			}
			for ; digits < 6; digits++ {
				frac *= 10
			}
			v += frac
		}
	}
	if v > math.MaxInt32 {
		return 0, "", errRange
	}
	return v, p, nil
}

// valid applies systemd's normalisation and range checks.
func (c *spec) valid() error {
	if c.endOfMonth && c.day == nil {
		c.endOfMonth = false
	}
	for i := range c.year { // two-digit years: 12 is 2012, 89 is 1989
		for _, v := range []*int64{&c.year[i].start, &c.year[i].stop} {
			switch {
			case *v >= 0 && *v < 70:
				*v += 2000
			case *v >= 70 && *v < 100:
				*v += 1900
			}
		}
	}
	for _, ch := range []struct {
		c        []component
		from, to int64
		eom      bool
	}{
		{c.year, 1970, 2199, false},
		{c.month, 1, 12, false},
		{c.day, 1, 31, c.endOfMonth},
		{c.hour, 0, 23, false},
		{c.minute, 0, 59, false},
		{c.usec, 0, 60*usecPerSec - 1, false},
	} {
		if !chainValid(ch.c, ch.from, ch.to, ch.eom) {
			return errRange
		}
	}
	return nil
}

func chainValid(cs []component, from, to int64, eom bool) bool {
	// systemd first normalises the list: a range is cut to a multiple of
	// its step, one that then holds a single value (or whose step never
	// fires) becomes that value, and the list is sorted with duplicates
	// dropped.
	norm := make([]component, 0, len(cs))
	for _, c := range cs {
		if c.stop > c.start && c.repeat > 0 {
			c.stop -= (c.stop - c.start) % c.repeat
		}
		if (c.stop > c.start && c.repeat > 0 && c.start+c.repeat > c.stop) || c.stop == c.start {
			c.stop, c.repeat = -1, 0
		}
		norm = append(norm, c)
	}
	slices.SortFunc(norm, func(a, b component) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.stop, b.stop), cmp.Compare(a.repeat, b.repeat))
	})
	norm = slices.Compact(norm)
	for _, c := range norm {
		if eom {
			// No more than 28 days from the end of a month; systemd
			// takes 3 off the limit again for each further element of
			// the list, so "*-*~2,28" is refused where "*-*~28" is not.
			to -= 3
		}
		if c.start < from || c.start > to || c.repeat > to-from {
			return false
		}
		if c.stop >= 0 {
			if c.stop < from || c.stop > to || c.start+c.repeat > c.stop {
				return false
			}
		} else if (eom && c.start-c.repeat < from) || (!eom && c.start+c.repeat > to) {
			return false
		}
	}
	return true
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// cutLocalZone strips the local zone's abbreviation (standard or
// summer time, as the C library's tzname), which systemd also accepts.
func cutLocalZone(p string) (string, bool) {
	y := time.Now().Year()
	for _, t := range []time.Time{time.Date(y, 1, 1, 0, 0, 0, 0, time.Local), time.Date(y, 7, 1, 0, 0, 0, 0, time.Local)} {
		name, _ := t.Zone()
		if name == "" || len(p) <= len(name) {
			continue
		}
		if s, ok := cutSuffixFold(p, name); ok && strings.HasSuffix(s, " ") {
			return s[:len(s)-1], true
		}
	}
	return p, false
}

var zoneName = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)

// validZone: a time zone this machine's zoneinfo knows, such as
// Europe/Berlin (systemd reads the same files).
func validZone(name string) bool {
	if !zoneName.MatchString(name) || name == "Local" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}
