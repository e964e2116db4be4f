package chain

import (
	"fmt"
	"time"

	"sqlite-backup/internal/format/manifest"
)

// Defaults of Policy. A chain is as fragile as its weakest file and a
// restore reads all of it, so chains are kept short, as pgBackRest
// advises: 24 increments after a full, so hourly backups take a full
// once a day and a restore merges at most 24 files (the restore figure
// of issue 30 is measured at that length); and 7 days, so backups a few
// times a day or daily still start a new chain every week, and no full
// that every later point needs is older than that.
const (
	DefaultFullEvery    = 24
	DefaultFullEveryAge = 7 * 24 * time.Hour
)

// Policy says when the next point must be a full backup although the
// chain could go on. The other reasons (a page size change, more than
// MaxChanged of the pages changed, an unusable index) are found while
// the increment is written (NeedFullError).
type Policy struct {
	// FullEvery is how many increments may follow a full (default
	// DefaultFullEvery); FullEveryAge how old the full may be (default
	// DefaultFullEveryAge). The first limit reached starts a new chain.
	FullEvery    int
	FullEveryAge time.Duration
	// MaxChanged is passed to WriteIncrement.
	MaxChanged float64
}

func (p Policy) withDefaults() Policy {
	if p.FullEvery <= 0 {
		p.FullEvery = DefaultFullEvery
	}
	if p.FullEveryAge <= 0 {
		p.FullEveryAge = DefaultFullEveryAge
	}
	if p.MaxChanged <= 0 {
		p.MaxChanged = DefaultMaxChanged
	}
	return p
}

// Decide says, before the source is read, whether the next point can be
// an increment on head (the newest point of this database, nil if
// there is none), whose chain's full was taken at fullTime. It returns
// "" for an increment, else why a full is needed.
func (p Policy) Decide(head *Point, fullTime, now time.Time) string {
	p = p.withDefaults()
	switch {
	case head == nil:
		return "no earlier backup of this database to build on"
	case head.Chain.Kind != manifest.KindFull && head.Chain.Kind != manifest.KindIncrement:
		return fmt.Sprintf("the newest backup %s is not part of a chain", head.Name())
	case head.Chain.Seq >= p.FullEvery:
		return fmt.Sprintf("the chain has %d increments (a full every %d)", head.Chain.Seq, p.FullEvery)
	case now.Sub(fullTime) >= p.FullEveryAge:
		return fmt.Sprintf("the chain's full backup is %s old (a full every %s)", now.Sub(fullTime).Round(time.Minute), p.FullEveryAge)
	}
	return ""
}
