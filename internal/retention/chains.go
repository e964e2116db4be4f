package retention

import (
	"fmt"
	"sort"
)

// Link is what a backup's manifest says of its place in an incremental
// chain: its kind ("full", "increment"; "" for a backup outside any
// chain) and, for an increment, the base name of its parent.
type Link struct {
	Kind   string
	Parent string
}

// Needs lists what the kept backups need besides themselves: every
// parent of a kept increment up to its chain's full, each with the
// reason "needed by NAME", so that pruning never breaks a kept point's
// chain. links are what the manifests say, by base name (a backup whose
// manifest is missing or unreadable is absent); kept are the base names
// a policy keeps. A kept chain that cannot be followed (a parent's
// manifest missing, or an increment's own) is returned in unresolved, by
// the name of the kept point: the caller then keeps every older backup
// of the database, since what it needs cannot be told.
func Needs(kept []string, links map[string]Link) (needed map[string]string, unresolved []string) {
	needed = map[string]string{}
	keep := map[string]bool{}
	for _, k := range kept {
		keep[k] = true
	}
	for _, k := range kept {
		name := k
		for steps := 0; ; steps++ {
			l, ok := links[name]
			if !ok {
				if name != k || KindOf(k) == KindIncrement {
					unresolved = append(unresolved, k)
				}
				break
			}
			if l.Kind != KindIncrement {
				break // a full, or a backup outside any chain
			}
			if l.Parent == "" || steps > len(links) {
				unresolved = append(unresolved, k)
				break
			}
			name = l.Parent
			if keep[name] {
				continue
			}
			if _, seen := needed[name]; !seen {
				needed[name] = fmt.Sprintf("needed by %s", k)
			}
		}
	}
	sort.Strings(unresolved)
	return needed, unresolved
}

// PlanChains is Plan for backups that may form incremental chains: the
// policy picks points as Plan does, then every point a kept one needs
// (Needs) is kept too, with the reason "needed by NAME"; a full that no
// kept point needs goes with its increments. When a kept point's chain
// cannot be followed, every backup older than it is kept, with the
// reason "older than NAME, whose chain cannot be followed". links are by
// base name (Needs); protect is by Path, as for Plan.
func PlanChains(backups []Backup, p Policy, protect map[string]string, links map[string]Link) []Decision {
	ds := Plan(backups, p, protect)
	var kept []string
	for _, d := range ds {
		if d.Keep {
			kept = append(kept, d.Name)
		}
	}
	needed, unresolved := Needs(kept, links)
	if len(needed) == 0 && len(unresolved) == 0 {
		return ds
	}
	more := map[string]string{}
	for k, v := range protect {
		more[k] = v
	}
	for i, d := range ds {
		if why, ok := needed[d.Name]; ok {
			if _, set := more[d.Path]; !set {
				more[d.Path] = why
			}
		}
		for _, u := range unresolved {
			if d.Name != u {
				continue
			}
			// ds is newest first: everything after it is older.
			for _, o := range ds[i+1:] {
				if _, set := more[o.Path]; !set {
					more[o.Path] = fmt.Sprintf("older than %s, whose chain cannot be followed", u)
				}
			}
		}
	}
	return Plan(backups, p, more)
}
