package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"sqlite-backup/internal/sys/fault"
)

// A full integrity_check is quick_check plus, for every row of every
// table and every index of it, a lookup of the row's index entry. That
// cross check is nearly all of the time (7.3 s of 7.7 s at 1 GB) and runs
// on one thread. For the schemas where the same cross check can be
// written in SQL with the same meaning, the plan runs quick_check
// and one query per index on separate connections, one per core.
//
// What integrity_check does beyond quick_check for an index I of a rowid
// table T (SQLite's pragma.c), and the query that does the same here:
//
//   - every row's key (the indexed columns and the rowid) is found in I:
//     a row of T, scanned without an index, for which no entry of I,
//     searched through I alone, has the same columns under BINARY
//     comparison and the same rowid, is "row N missing from index I";
//   - the found entry's rowid is the last field of its record: the
//     rowid is compared again, read from the entry (+x.rowid, which
//     the search cannot use, so it is read and not assumed);
//   - a UNIQUE index holds no two entries with the same non-NULL key:
//     "non-unique entry in index I";
//   - non-BINARY index columns hold the table's exact text: such
//     indexes are not eligible (below), so there is nothing to compare.
//
// quick_check itself does the rest: every b-tree's structure, the page
// accounting and the free list, each index's entry count against its
// table's, and each row's NOT NULL and type constraints; not its CHECK
// constraints, which a read-only connection does not parse: those are
// checkConstraints', on this path as on SQLite's own check. With
// every row found in I and I holding as many entries as T has rows, I
// holds exactly T's rows, as integrity_check concludes.
//
// The verdict is integrity_check's; the words are too, except that an
// entry whose rowid is not at the end of its record is reported as a
// missing row, and an extra entry under a UNIQUE index may add a
// "non-unique entry" beside the "missing" one integrity_check reports.
//
// Eligible are databases whose tables are all ordinary rowid tables
// without hidden or generated columns and whose indexes are all on plain
// columns with BINARY collation and without a WHERE clause; each query's
// plan is confirmed (the table scanned, the index searched covering, by
// its key and rowid). Anything else, virtual tables included, gets
// SQLite's own single integrity_check.
//
// The CHECK constraints (checkConstraints) are scanned by the same
// workers, one query per table that has any, beside these queries
// instead of in a pass after them. (Evaluating them inside the scan of
// the table's first index query instead cost more: 6.8 s for that query
// against 4.9 s plus 1.2 s for the two apart, 1 GB, three CHECKs.)
type parallelPlan struct {
	queries []string // quick_check first, then the indexes'
	checks  *constraintPlan
}

// The plan pays off where the index lookups dominate: in files of some
// size, with a schema small enough to plan quickly. Planning costs a few
// queries per table and index (0.8 s for a 37 MB file of 3,000 tables
// with two indexes each, whose whole check takes 0.07 s), so a smaller
// file, or one with more indexes, gets SQLite's own check at once.
var (
	parallelMinSize    int64 = 64 << 20
	parallelMaxIndexes       = 100
)

// planParallel returns nil when the database is not eligible. Its reads
// are guarded (queryRows): a memory fault is an error wrapping
// fault.ErrFault, and the connection must then be dropped.
func planParallel(ctx context.Context, db *sql.DB, max int) (*parallelPlan, error) {
	var indexes int
	err := queryRows(ctx, db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'", func(r *sql.Rows) error {
		return r.Scan(&indexes)
	})
	if err != nil || indexes > parallelMaxIndexes {
		return nil, err
	}
	type table struct{ name, typ string }
	var tables []table
	err = queryRows(ctx, db, "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'", func(r *sql.Rows) error {
		var t table
		var wr int
		if err := r.Scan(&t.name, &t.typ, &wr); err != nil {
			return err
		}
		if wr != 0 {
			t.typ = "without rowid"
		}
		tables = append(tables, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	p := &parallelPlan{queries: []string{fmt.Sprintf("PRAGMA quick_check(%d)", max)}}
	if p.checks, err = planConstraints(ctx, db); err != nil {
		return nil, err
	}
	for _, t := range tables {
		switch t.typ {
		case "view":
			continue
		case "table", "shadow":
		default: // virtual, without rowid
			return nil, nil
		}
		var cols []string
		hidden := false
		err := queryRows(ctx, db, "SELECT name, hidden FROM pragma_table_xinfo(?)", func(r *sql.Rows) error {
			var name string
			var h int
			if err := r.Scan(&name, &h); err != nil {
				return err
			}
			hidden = hidden || h != 0
			cols = append(cols, strings.ToLower(name))
			return nil
		}, t.name)
		if err != nil {
			return nil, err
		}
		if hidden {
			return nil, nil
		}
		rowid := ""
		for _, a := range []string{"rowid", "_rowid_", "oid"} {
			if !slices.Contains(cols, a) {
				rowid = a
				break
			}
		}
		if rowid == "" {
			return nil, nil
		}
		type index struct {
			name            string
			unique, partial int
		}
		var idxs []index
		err = queryRows(ctx, db, `SELECT name, "unique", partial FROM pragma_index_list(?)`, func(r *sql.Rows) error {
			var i index
			if err := r.Scan(&i.name, &i.unique, &i.partial); err != nil {
				return err
			}
			idxs = append(idxs, i)
			return nil
		}, t.name)
		if err != nil {
			return nil, err
		}
		for _, ix := range idxs {
			if ix.partial != 0 {
				return nil, nil
			}
			var keys []string
			ok := true
			err := queryRows(ctx, db, "SELECT cid, name, coll FROM pragma_index_xinfo(?) WHERE key ORDER BY seqno", func(r *sql.Rows) error {
				var cid int
				var name, coll sql.NullString
				if err := r.Scan(&cid, &name, &coll); err != nil {
					return err
				}
				if cid < 0 || !name.Valid || !strings.EqualFold(coll.String, "BINARY") {
					ok = false
				}
				keys = append(keys, name.String)
				return nil
			}, ix.name)
			if err != nil {
				return nil, err
			}
			if !ok || len(keys) == 0 {
				return nil, nil
			}
			q, uq := indexQueries(t.name, ix.name, rowid, keys, ix.unique != 0, max)
			// The search must use every column and the rowid: a term left
			// to a filter would compare under the column's affinity, not
			// as the index record compares.
			var terms []string
			for _, k := range keys {
				terms = append(terms, k+"=?")
			}
			search := "SEARCH x USING COVERING INDEX " + ix.name + " (" + strings.Join(append(terms, "rowid=?"), " AND ") + ")"
			if !planIs(ctx, db, q, []string{"SCAN r"}, "SCAN r", search) {
				return nil, nil
			}
			p.queries = append(p.queries, q)
			if uq != "" {
				if !planIs(ctx, db, uq, []string{"SCAN grp", "SCAN rep"}, " USING COVERING INDEX "+ix.name) {
					return nil, nil
				}
				p.queries = append(p.queries, uq)
			}
		}
	}
	return p, nil
}

// indexQueries returns the query that lists rows of tbl missing from idx
// and, for a UNIQUE index, the one that lists duplicate keys, each row a
// problem in integrity_check's words.
func indexQueries(tbl, idx, rowid string, keys []string, unique bool, max int) (missing, dup string) {
	var on, notNull, group []string
	for _, k := range keys {
		on = append(on, fmt.Sprintf("x.%s IS r.%s COLLATE BINARY", ident(k), ident(k)))
		notNull = append(notNull, ident(k)+" IS NOT NULL")
		group = append(group, ident(k)+" COLLATE BINARY")
	}
	missing = fmt.Sprintf("SELECT 'row ' || r.%[3]s || ' missing from index ' || %[4]s FROM %[1]s AS r NOT INDEXED "+
		"WHERE NOT EXISTS (SELECT 1 FROM %[1]s AS x INDEXED BY %[2]s WHERE %[5]s AND x.%[3]s = r.%[3]s AND +x.%[3]s = r.%[3]s) LIMIT %[6]d",
		ident(tbl), ident(idx), rowid, literal(idx), strings.Join(on, " AND "), max)
	if unique {
		// integrity_check reports every entry whose next entry has the
		// same key: n-1 of a group of n.
		dup = fmt.Sprintf("WITH grp(n) AS (SELECT count(*) FROM %[1]s INDEXED BY %[2]s WHERE %[4]s GROUP BY %[5]s HAVING count(*) > 1), "+
			"rep(n) AS (SELECT n - 1 FROM grp UNION ALL SELECT n - 1 FROM rep WHERE n > 1) "+
			"SELECT 'non-unique entry in index ' || %[3]s FROM rep LIMIT %[6]d",
			ident(tbl), ident(idx), literal(idx), strings.Join(notNull, " AND "), strings.Join(group, ", "), max)
	}
	return missing, dup
}

// planIs reports whether EXPLAIN QUERY PLAN of q has, for each of want,
// a line that ends with it or goes on with its terms " (…", and no line
// that reads a table other than through a covering index, except the
// scans named in plain.
func planIs(ctx context.Context, db *sql.DB, q string, plain []string, want ...string) bool {
	var lines []string
	err := queryRows(ctx, db, "EXPLAIN QUERY PLAN "+q, func(r *sql.Rows) error {
		var id, parent, notused int
		var detail string
		if err := r.Scan(&id, &parent, &notused, &detail); err != nil {
			return err
		}
		lines = append(lines, detail)
		return nil
	})
	if err != nil {
		return false
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || strings.HasSuffix(l, w) || strings.Contains(l, w+" (")
		}
		if !found {
			return false
		}
	}
	for _, l := range lines {
		if (strings.HasPrefix(l, "SEARCH") || strings.HasPrefix(l, "SCAN")) &&
			!strings.Contains(l, "COVERING INDEX") && !slices.Contains(plain, l) {
			return false
		}
	}
	return true
}

// run runs the plan's queries and CHECK scans on up to workers
// connections of db and returns the problems they list, at most max:
// quick_check's first, as integrity_check lists them, then the indexes',
// then any query's error (SQLite refusing to read on is itself a
// problem), then the CHECK problems, as checkConstraints lists them. An
// error does not stop the other queries, so quick_check's own words are
// never lost; a memory fault does, and is returned.
func (p *parallelPlan) run(ctx context.Context, db *sql.DB, workers, max int) ([]string, error) {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	db.SetMaxOpenConns(workers)
	defer db.SetMaxOpenConns(1)

	// The jobs in the order they are handed out, longest first as far as
	// known: the index queries (a search per row), the CHECK scans (a
	// scan of one table), quick_check (every page once, but the shortest
	// in practice) last, so that the other core takes it after the first
	// index query.
	type job struct {
		run   func(ctx context.Context, db *sql.DB) ([]string, error)
		query bool // its error is a problem (a CHECK scan's are its own)
	}
	var jobs []job
	for _, q := range p.queries[1:] {
		jobs = append(jobs, job{func(ctx context.Context, db *sql.DB) ([]string, error) { return problemRows(ctx, db, q) }, true})
	}
	var scans []constraintScan
	if p.checks != nil {
		scans = p.checks.scans
	}
	scanned := make([][]string, len(scans)) // each CHECK scan's problems
	scanErrs := make([]error, len(scans))   // cancellation, a fault
	for k, c := range scans {
		jobs = append(jobs, job{func(ctx context.Context, db *sql.DB) ([]string, error) {
			scanned[k], scanErrs[k] = c.run(ctx, db)
			return nil, scanErrs[k]
		}, false})
	}
	quick := len(jobs)
	jobs = append(jobs, job{func(ctx context.Context, db *sql.DB) ([]string, error) { return problemRows(ctx, db, p.queries[0]) }, true})

	results := make([][]string, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i], errs[i] = jobs[i].run(inner, db)
				if errors.Is(errs[i], fault.ErrFault) {
					cancel()
				}
			}
		}()
	}
	for k := range jobs {
		select {
		case next <- k:
		case <-inner.Done():
		}
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, fault.ErrFault) { // its connection must not be reused
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	problems := slices.Clone(results[quick])
	for i := range len(p.queries) - 1 {
		problems = append(problems, results[i]...)
	}
	for i, err := range errs {
		if err != nil && jobs[i].query && !slices.Contains(problems, err.Error()) {
			problems = append(problems, err.Error())
		}
	}
	if p.checks != nil {
		problems = append(problems, p.checks.schema...)
		for k := range scans {
			if scanErrs[k] != nil { // only cancellation is left
				return nil, scanErrs[k]
			}
			problems = append(problems, scanned[k]...)
		}
	}
	return problems[:min(len(problems), max)], nil
}

// problemRows runs q, one text column a row as the check pragmas and the
// plan's queries return, and returns the rows other than "ok".
func problemRows(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	var out []string
	err := queryRows(ctx, db, q, func(r *sql.Rows) error {
		var s string
		if err := r.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// queryRows runs q and calls each for every row. Reads may go through
// mmap: a fault there is returned (wrapping fault.ErrFault) and the rows
// are then left alone, never closed, so that nothing touches the
// interrupted connection again.
func queryRows(ctx context.Context, db *sql.DB, q string, each func(*sql.Rows) error, args ...any) error {
	var rows *sql.Rows
	err := fault.Guard(func() (err error) {
		rows, err = db.QueryContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return err
	}
	for {
		var more bool
		if err := fault.Guard(func() error { more = rows.Next(); return nil }); err != nil {
			return err
		}
		if !more {
			break
		}
		if err := each(rows); err != nil {
			rows.Close()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}

func ident(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
