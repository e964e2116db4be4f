package chain

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/retention"
)

// TestNeeds: over random chains and random keep rules (retention.Plan
// as pruning runs it), the kept points plus what Needs adds hold every
// kept point's whole chain, and nothing else: a point is added only if
// a kept point needs it. A missing manifest in a kept chain is reported.
func TestNeeds(t *testing.T) {
	rng := rand.New(rand.NewPCG(30, 30))
	for run := range 500 {
		// A history of points an hour to a day apart, a full whenever a
		// coin says so or the chain reached its length.
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local)
		points := map[string]Point{}
		var backups []retention.Backup
		var base, parent Point
		maxLen := 1 + rng.IntN(10)
		n := 1 + rng.IntN(60)
		for i := range n {
			at = at.Add(time.Duration(1+rng.IntN(24)) * time.Hour)
			name := "app.db." + at.Format(retention.TimeFormat)
			state := ltx.Checksum(uint64(i+1) | uint64(ltx.ChecksumFlag)).String()
			c := manifest.Chain{Kind: manifest.KindFull, PageSize: 4096, Pages: 10, State: state}
			if i > 0 && parent.Chain.Seq < maxLen && rng.IntN(5) != 0 {
				c = manifest.Chain{Kind: manifest.KindIncrement, Seq: parent.Chain.Seq + 1, Parent: parent.Name(), Base: base.Name(),
					PageSize: 4096, Pages: 10, State: state, PreState: parent.Chain.State}
				name += ".ltx"
			}
			p := Point{Path: "/b/" + name, Chain: c}
			if c.Kind == manifest.KindFull {
				base = p
			}
			parent = p
			points[name] = p
			backups = append(backups, retention.Backup{Path: p.Path, Name: name, DB: "app.db", Time: at, Seq: 1})
		}
		policy := retention.Policy{Last: rng.IntN(4), Daily: rng.IntN(4), Weekly: rng.IntN(3)}
		var kept []string
		for _, d := range retention.Plan(backups, policy, nil) {
			if d.Keep {
				kept = append(kept, d.Name)
			}
		}
		needed, unresolved := Needs(kept, points)
		if len(unresolved) > 0 {
			t.Fatalf("run %d: unresolved %v with every manifest there", run, unresolved)
		}
		final := map[string]Point{}
		for _, k := range kept {
			final[k] = points[k]
		}
		for k := range needed {
			final[k] = points[k]
		}
		for _, k := range kept {
			if _, err := Resolve(final, k); err != nil {
				t.Fatalf("run %d (%+v): kept %s cannot be restored after pruning: %v", run, policy, k, err)
			}
		}
		// Nothing added that no kept point needs: every added point is
		// an ancestor of a kept one.
		ancestors := map[string]bool{}
		for _, k := range kept {
			for p := points[k]; p.Chain.Kind == manifest.KindIncrement; p = points[p.Chain.Parent] {
				ancestors[p.Chain.Parent] = true
			}
		}
		for k := range needed {
			if !ancestors[k] {
				t.Fatalf("run %d: %s kept though no kept point needs it", run, k)
			}
		}
	}

	// A kept increment whose parent's manifest is gone: reported.
	points := map[string]Point{
		"a": {Path: "/b/a", Chain: manifest.Chain{Kind: manifest.KindFull}},
		"c": {Path: "/b/c", Chain: manifest.Chain{Kind: manifest.KindIncrement, Seq: 2, Parent: "b", Base: "a"}},
	}
	if _, unresolved := Needs([]string{"c"}, points); fmt.Sprint(unresolved) != "[c]" {
		t.Fatalf("unresolved %v, want [c]", unresolved)
	}
}
