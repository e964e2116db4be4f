package chain

import (
	"sqlite-backup/internal/retention"
)

// Needs lists what the points a retention policy keeps need besides
// themselves: every parent up to their full, each with the reason
// "needed by NAME" (for retention.Plan's protect), so that pruning never
// breaks a kept point's chain. points are every point of the database by
// base name, read from their manifests; kept are the names the policy
// keeps. A kept chain that cannot be followed (a parent whose manifest
// is missing or unreadable) is returned in unresolved, by the name of
// the point whose parent is unknown: the caller then keeps every older
// backup of the database, since what it needs cannot be told. The walk
// is retention.Needs, which remote pruning uses too.
func Needs(kept []string, points map[string]Point) (needed map[string]string, unresolved []string) {
	return retention.Needs(kept, Links(points))
}

// Links is what retention.Needs and retention.PlanChains know of points.
func Links(points map[string]Point) map[string]retention.Link {
	links := make(map[string]retention.Link, len(points))
	for name, p := range points {
		links[name] = retention.Link{Kind: p.Chain.Kind, Parent: p.Chain.Parent}
	}
	return links
}
