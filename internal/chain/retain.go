package chain

import (
	"fmt"

	"sqlite-backup/internal/format/manifest"
)

// Needs lists what the points a retention policy keeps need besides
// themselves: every parent up to their full, each with the reason
// "needed by NAME" (for retention.Plan's protect), so that pruning never
// breaks a kept point's chain. points are every point of the database by
// base name, read from their manifests; kept are the names the policy
// keeps. A kept chain that cannot be followed (a parent whose manifest
// is missing or unreadable) is returned in unresolved, by the name of
// the point whose parent is unknown: the caller then keeps every older
// backup of the database, since what it needs cannot be told.
func Needs(kept []string, points map[string]Point) (needed map[string]string, unresolved []string) {
	needed = map[string]string{}
	keep := map[string]bool{}
	for _, k := range kept {
		keep[k] = true
	}
	for _, k := range kept {
		name := k
		for steps := 0; ; steps++ {
			p, ok := points[name]
			if !ok {
				if name != k {
					unresolved = append(unresolved, k)
				}
				break
			}
			if p.Chain.Kind == manifest.KindFull || p.Chain.Kind == "" {
				break // a full, or a backup outside any chain
			}
			if p.Chain.Parent == "" || steps > len(points) {
				unresolved = append(unresolved, k)
				break
			}
			name = p.Chain.Parent
			if keep[name] {
				continue
			}
			if _, seen := needed[name]; !seen {
				needed[name] = fmt.Sprintf("needed by %s", k)
			}
		}
	}
	return needed, unresolved
}
