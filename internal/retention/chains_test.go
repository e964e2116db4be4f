package retention

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPlanChains: over random histories of chains and random keep rules,
// every kept increment keeps its whole chain (parents up to the full),
// everything added is needed by a kept point, and a kept point whose
// chain cannot be followed (a parent's manifest gone) keeps every older
// backup of the database.
func TestPlanChains(t *testing.T) {
	rng := rand.New(rand.NewPCG(30, 2))
	for run := range 1000 {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var bs []Backup
		links := map[string]Link{}
		parent, seq := "", 0
		maxLen := 1 + rng.IntN(8)
		for i := range 1 + rng.IntN(50) {
			at = at.Add(time.Duration(1+rng.IntN(30)) * time.Hour)
			name := "app.db." + at.Format(TimeFormat)
			l := Link{Kind: KindFull}
			switch {
			case i > 0 && rng.IntN(12) == 0:
				l = Link{} // a backup taken without --incremental
				seq = maxLen
			case i > 0 && seq < maxLen && rng.IntN(5) != 0:
				name += IncrementSuffix
				l = Link{Kind: KindIncrement, Parent: parent}
				seq++
			default:
				seq = 0
			}
			parent = name
			links[name] = l
			bs = append(bs, Backup{Path: "/b/" + name, Name: name, DB: "app.db", Time: at, Seq: 1, Kind: KindOf(name)})
		}
		lost := ""
		if rng.IntN(4) == 0 {
			lost = bs[rng.IntN(len(bs))].Name
			delete(links, lost)
		}
		p := Policy{Last: rng.IntN(5), Daily: rng.IntN(4), Weekly: rng.IntN(3)}
		ds := PlanChains(bs, p, nil, links)
		keep := map[string]Decision{}
		for _, d := range ds {
			if d.Keep {
				keep[d.Name] = d
			}
		}
		why := fmt.Sprintf("run %d (%+v, lost %q)", run, p, lost)
		plain := map[string]bool{}
		for _, d := range Plan(bs, p, nil) {
			plain[d.Name] = d.Keep
		}
		for i, d := range ds {
			if !d.Keep {
				if plain[d.Name] {
					t.Fatalf("%s: %s kept by the rules is removed", why, d.Name)
				}
				continue
			}
			// Its chain is whole, or (a manifest lost) everything older is kept.
			name := d.Name
			for {
				l, ok := links[name]
				if !ok {
					if name == lost && KindOf(name) != KindIncrement && name == d.Name {
						break
					}
					for _, o := range ds[i+1:] {
						if !o.Keep {
							t.Fatalf("%s: %s's chain cannot be followed past %s, yet older %s is removed", why, d.Name, name, o.Name)
						}
					}
					break
				}
				if l.Kind != KindIncrement {
					break
				}
				if _, ok := keep[l.Parent]; !ok {
					t.Fatalf("%s: %s is kept, its parent %s is removed", why, name, l.Parent)
				}
				name = l.Parent
			}
			if !plain[d.Name] && len(d.Reasons) == 0 {
				t.Fatalf("%s: %s kept without a reason", why, d.Name)
			}
		}
		if lost == "" {
			// Nothing kept beyond the rules and what a kept point needs.
			needed := map[string]bool{}
			for name, d := range keep {
				if !plain[name] {
					continue
				}
				for l := links[d.Name]; l.Kind == KindIncrement; l = links[l.Parent] {
					needed[l.Parent] = true
				}
			}
			for name := range keep {
				if !plain[name] && !needed[name] {
					t.Fatalf("%s: %s is kept though no kept point needs it", why, name)
				}
			}
		}
	}
}
