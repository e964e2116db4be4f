package litestream

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/superfly/ltx"
)

// ErrNoPoint is returned by Plan when the replica holds no restorable
// point at or before the one asked for.
var ErrNoPoint = errors.New("no restorable point")

// GapError is Plan's error for the newest point when the files stop
// short of the replica's newest TXID: Litestream's restore refuses it
// too ("non-contiguous ltx files").
type GapError struct {
	Have, Next ltx.TXID // restorable up to Have; the next file starts at Next
	File       File     // that next file
}

func (e *GapError) Error() string {
	return fmt.Sprintf("TXIDs %s to %s are in no file: restorable up to %s, the next file (%s) starts at %s",
		e.Have+1, e.Next-1, e.Have, e.File.Name(), e.Next)
}

// Plan returns the files Litestream v0.5.18's restore reads for a point,
// in order (its CalcRestorePlan): txid 0 and a zero at mean the newest;
// at picks by the files' times (strictly before at), txid by their
// TXIDs. The newest snapshot (level 9) at or before the point comes
// first, then, again and again, of the files of levels 0-8 that start at
// or before the next TXID, the one reaching furthest (ties: the lower
// start, the higher level, the older file). For the newest point a file
// left beyond a gap fails it (*GapError), as Litestream's does.
func (r *Replica) Plan(txid ltx.TXID, at time.Time) ([]File, error) {
	if txid != 0 && !at.IsZero() {
		return nil, errors.New("give a TXID or a time, not both")
	}
	eligible := func(f File) bool {
		return (txid == 0 || f.MaxTXID <= txid) && (at.IsZero() || f.Created.Before(at))
	}
	var plan []File
	for _, f := range r.Levels[SnapshotLevel] {
		if eligible(f) {
			// The last in TXID order: Litestream keeps the last it sees.
			if len(plan) == 0 {
				plan = append(plan, f)
			} else {
				plan[0] = f
			}
		}
	}
	cur := ltx.TXID(0)
	if len(plan) > 0 {
		cur = plan[0].MaxTXID
	}
	if txid != 0 && cur >= txid {
		return plan, nil
	}
	// One cursor per level, highest level first (Litestream's order,
	// which decides nothing but is kept).
	type cursor struct {
		fs   []File
		i    int
		cand *File
	}
	var cs []*cursor
	for level := SnapshotLevel - 1; level >= 0; level-- {
		cs = append(cs, &cursor{fs: r.Levels[level]})
	}
	for {
		var next *cursor
		for _, c := range cs {
			if c.cand != nil && c.cand.MaxTXID <= cur {
				c.cand = nil
			}
			for c.i < len(c.fs) && c.fs[c.i].MinTXID <= cur+1 {
				f := c.fs[c.i]
				c.i++
				if f.MaxTXID <= cur || !eligible(f) {
					continue
				}
				if c.cand == nil || better(*c.cand, f) {
					c.cand = &f
				}
			}
			if c.cand != nil && (next == nil || better(*next.cand, *c.cand)) {
				next = c
			}
		}
		if next == nil {
			break
		}
		plan = append(plan, *next.cand)
		cur = next.cand.MaxTXID
		next.cand = nil
		if txid != 0 && cur >= txid {
			break
		}
	}
	if len(plan) > 0 && txid == 0 && at.IsZero() {
		for _, c := range cs {
			if c.i < len(c.fs) && c.fs[c.i].MinTXID > cur+1 {
				return nil, &GapError{Have: cur, Next: c.fs[c.i].MinTXID, File: c.fs[c.i]}
			}
		}
	}
	if len(plan) == 0 || txid != 0 && cur < txid {
		return nil, ErrNoPoint
	}
	return plan, nil
}

// better is Litestream's restoreCandidateBetter: next beats curr when it
// reaches further, else starts lower, else is of a higher level, else
// is older.
func better(curr, next File) bool {
	if next.MaxTXID != curr.MaxTXID {
		return next.MaxTXID > curr.MaxTXID
	}
	if next.MinTXID != curr.MinTXID {
		return next.MinTXID < curr.MinTXID
	}
	if next.Level != curr.Level {
		return next.Level > curr.Level
	}
	return next.Created.Before(curr.Created)
}

// Point is one TXID the replica can be restored to.
type Point struct {
	TXID    ltx.TXID  `json:"txid"`
	Created time.Time `json:"created"`
	Files   int       `json:"files"` // how many files its restore reads
}

// Gap is a run of TXIDs in no file of any level.
type Gap struct {
	From, To ltx.TXID
}

// LevelSummary is what one level holds.
type LevelSummary struct {
	Level   int       `json:"level"`
	Files   int       `json:"files"`
	MinTXID ltx.TXID  `json:"min_txid"`
	MaxTXID ltx.TXID  `json:"max_txid"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	Bytes   int64     `json:"bytes"`
}

// Summary is what list shows of a replica.
type Summary struct {
	Location  string         `json:"location"`
	Snapshots []File         `json:"snapshots"`
	Levels    []LevelSummary `json:"levels"`
	// Points are the TXIDs a restore can reach (--txid), each the end of
	// some file: the newest point is restorable only if Newest is set.
	Points []Point `json:"points"`
	// Newest is the point a restore without --txid or --at gives; empty
	// with NewestErr when it fails (a gap).
	Newest    *Point `json:"newest,omitempty"`
	NewestErr string `json:"newest_error,omitempty"`
	// Gaps are TXIDs in no file; Unreachable the ends of files no plan
	// reaches (before every snapshot, after a gap, or where retention
	// removed a level's files).
	Gaps        []Gap      `json:"gaps,omitempty"`
	Unreachable []ltx.TXID `json:"unreachable,omitempty"`
}

// Summarize lists the replica's snapshots, levels, restore points and
// what is missing.
func (r *Replica) Summarize() Summary {
	s := Summary{Location: r.Location, Snapshots: r.Levels[SnapshotLevel]}
	var levels []int
	for l := range r.Levels {
		levels = append(levels, l)
	}
	sort.Ints(levels)
	type span struct{ min, max ltx.TXID }
	var spans []span
	ends := map[ltx.TXID]time.Time{}
	for _, l := range levels {
		fs := r.Levels[l]
		ls := LevelSummary{Level: l, Files: len(fs), MinTXID: fs[0].MinTXID, First: fs[0].Created, Last: fs[0].Created}
		for _, f := range fs {
			ls.MaxTXID = max(ls.MaxTXID, f.MaxTXID)
			ls.Bytes += f.Size
			if f.Created.Before(ls.First) {
				ls.First = f.Created
			}
			if f.Created.After(ls.Last) {
				ls.Last = f.Created
			}
			spans = append(spans, span{f.MinTXID, f.MaxTXID})
			if t, ok := ends[f.MaxTXID]; !ok || f.Created.Before(t) {
				ends[f.MaxTXID] = f.Created
			}
		}
		s.Levels = append(s.Levels, ls)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].min < spans[j].min })
	covered := ltx.TXID(0)
	for _, sp := range spans {
		if sp.min > covered+1 {
			s.Gaps = append(s.Gaps, Gap{From: covered + 1, To: sp.min - 1})
		}
		covered = max(covered, sp.max)
	}
	var txids []ltx.TXID
	for t := range ends {
		txids = append(txids, t)
	}
	sort.Slice(txids, func(i, j int) bool { return txids[i] < txids[j] })
	for _, t := range txids {
		plan, err := r.Plan(t, time.Time{})
		if err != nil || plan[len(plan)-1].MaxTXID != t {
			s.Unreachable = append(s.Unreachable, t)
			continue
		}
		s.Points = append(s.Points, Point{TXID: t, Created: ends[t], Files: len(plan)})
	}
	if plan, err := r.Plan(0, time.Time{}); err != nil {
		s.NewestErr = err.Error()
	} else {
		last := plan[len(plan)-1]
		s.Newest = &Point{TXID: last.MaxTXID, Created: last.Created, Files: len(plan)}
	}
	return s
}
