package chain

import (
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(seq int) *Point {
		kind := manifest.KindIncrement
		if seq == 0 {
			kind = manifest.KindFull
		}
		return &Point{Path: "/b/app.db.x", Chain: manifest.Chain{Kind: kind, Seq: seq}}
	}
	cases := []struct {
		name   string
		p      Policy
		head   *Point
		full   time.Time
		reason string // "" for an increment
	}{
		{"nothing to build on", Policy{}, nil, now, "no earlier backup"},
		{"not a chain", Policy{}, &Point{Path: "/b/app.db.x"}, now, "not part of a chain"},
		{"right after a full", Policy{}, at(0), now.Add(-time.Hour), ""},
		{"23 increments", Policy{}, at(23), now.Add(-23 * time.Hour), ""},
		{"24 increments: the default count", Policy{}, at(24), now.Add(-24 * time.Hour), "24 increments"},
		{"7 days: the default age", Policy{}, at(6), now.Add(-7 * 24 * time.Hour), "old"},
		{"6 days", Policy{}, at(6), now.Add(-6 * 24 * time.Hour), ""},
		{"count given", Policy{FullEvery: 3}, at(3), now.Add(-time.Hour), "3 increments"},
		{"age given", Policy{FullEveryAge: time.Hour}, at(1), now.Add(-time.Hour), "old"},
	}
	for _, c := range cases {
		got := c.p.Decide(c.head, c.full, now)
		if (c.reason == "") != (got == "") || !strings.Contains(got, c.reason) {
			t.Errorf("%s: %q, want %q", c.name, got, c.reason)
		}
	}
}
