// Package content describes what a database holds, independent of how
// its pages are laid out: per-table row counts and, on request, a logical
// hash of every row of every table in rowid/primary-key order with a
// stable encoding. Two databases with the same rows hash the same even
// when one was VACUUMed, so the hash taken from the source while the
// snapshot is pinned proves later that a backup still holds exactly that
// content.
package content

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"sort"
	"strings"
	"time"
)

// Algorithm names the encoding below; stored in manifests so that a
// future change of encoding is detected rather than reported as damage.
const Algorithm = "sqlite-backup-content-v1"

// Table is one table's count and (when hashed) logical hash.
type Table struct {
	Name   string
	Rows   int64
	SHA256 string
}

// Result describes the content of one database.
type Result struct {
	Tables []Table // sorted by name
	SHA256 string  // empty unless hashed
}

// querier is what both *sql.Conn (inside a transaction) and *sql.DB offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type table struct {
	name  string
	order string // ORDER BY clause
	cols  string // column list
}

// tables lists the ordinary tables, including SQLite's own such as
// sqlite_sequence; virtual tables are skipped (their data lives in
// shadow tables, which are listed).
func tables(ctx context.Context, q querier) ([]table, error) {
	rows, err := q.QueryContext(ctx, "SELECT name, coalesce(sql,'') FROM sqlite_schema WHERE type='table' ORDER BY name")
	if err != nil {
		return nil, err
	}
	var ts []table
	for rows.Next() {
		var name, sqlText string
		if err := rows.Scan(&name, &sqlText); err != nil {
			rows.Close()
			return nil, err
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(sqlText)), "CREATE VIRTUAL") {
			continue
		}
		ts = append(ts, table{name: name})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts, nil
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// plan works out the column list and a total order for hashing t.
func plan(ctx context.Context, q querier, t *table) error {
	rows, err := q.QueryContext(ctx, "SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", t.name)
	if err != nil {
		return err
	}
	type col struct {
		name string
		pk   int
	}
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.name, &c.pk); err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	names := map[string]bool{}
	var sel []string
	for _, c := range cols {
		names[strings.ToLower(c.name)] = true
		// The unary + drops the column's declared type, so the driver
		// hands back SQLite's stored value (it would otherwise parse
		// DATETIME text into time.Time and lose the exact bytes).
		sel = append(sel, "+"+quote(c.name))
	}
	var pks []string
	for i := 1; ; i++ {
		found := false
		for _, c := range cols {
			if c.pk == i {
				pks = append(pks, quote(c.name))
				found = true
			}
		}
		if !found {
			break
		}
	}
	// A WITHOUT ROWID table has no rowid to select; ask SQLite whether
	// selecting it works rather than parse CREATE TABLE.
	rowid := ""
	for _, n := range []string{"_rowid_", "rowid", "oid"} {
		if !names[n] {
			rowid = n
			break
		}
	}
	hasRowid := false
	if rowid != "" {
		r, err := q.QueryContext(ctx, "SELECT "+rowid+" FROM "+quote(t.name)+" LIMIT 0")
		if err == nil {
			r.Close()
			hasRowid = true
		}
	}
	switch {
	case hasRowid:
		t.cols = rowid + ", " + strings.Join(sel, ", ")
		t.order = rowid
	case len(pks) > 0:
		t.cols = strings.Join(sel, ", ")
		t.order = strings.Join(pks, ", ")
	default:
		// Every rowid alias shadowed by a column and no primary key:
		// order by every column so the order is still total.
		t.cols = strings.Join(sel, ", ")
		all := make([]string, len(cols))
		for i, c := range cols {
			all[i] = quote(c.name)
		}
		t.order = strings.Join(all, ", ")
	}
	return nil
}

// Count returns per-table row counts (no hash).
func Count(ctx context.Context, q querier) (*Result, error) {
	ts, err := tables(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	res := &Result{}
	for _, t := range ts {
		var n int64
		if err := q.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(t.name)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t.name, err)
		}
		res.Tables = append(res.Tables, Table{Name: t.name, Rows: n})
	}
	return res, nil
}

// Hash counts and hashes every table. The encoding, per table: the name;
// then per row, per value a type byte (0 NULL, 1 INTEGER as 8 bytes big
// endian, 2 REAL as its IEEE bits, 3 TEXT and 4 BLOB with an 8-byte
// length) with the rowid first for rowid tables. The database hash covers
// the schema (type, name, table, sql of every object; not root pages,
// which VACUUM changes) and each table's name, row count and hash.
func Hash(ctx context.Context, q querier) (*Result, error) {
	ts, err := tables(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	all := sha256.New()
	enc := encoder{h: all}
	enc.str(Algorithm)
	if err := hashRows(ctx, q, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name", all, nil); err != nil {
		return nil, fmt.Errorf("hash schema: %w", err)
	}
	res := &Result{}
	for i := range ts {
		t := &ts[i]
		if err := plan(ctx, q, t); err != nil {
			return nil, fmt.Errorf("hash table %s: %w", t.name, err)
		}
		h := sha256.New()
		var n int64
		if err := hashRows(ctx, q, "SELECT "+t.cols+" FROM "+quote(t.name)+" ORDER BY "+t.order, h, &n); err != nil {
			return nil, fmt.Errorf("hash table %s: %w", t.name, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		res.Tables = append(res.Tables, Table{Name: t.name, Rows: n, SHA256: sum})
		enc.str(t.name)
		enc.int(n)
		enc.str(sum)
	}
	res.SHA256 = hex.EncodeToString(all.Sum(nil))
	return res, nil
}

func hashRows(ctx context.Context, q querier, query string, h hash.Hash, count *int64) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	enc := encoder{h: h}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, v := range vals {
			if err := enc.value(v); err != nil {
				return err
			}
		}
		n++
		if n&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if count != nil {
		*count = n
	}
	return rows.Err()
}

type encoder struct {
	h   hash.Hash
	buf [9]byte
}

func (e *encoder) tagged(tag byte, u uint64) {
	e.buf[0] = tag
	binary.BigEndian.PutUint64(e.buf[1:], u)
	e.h.Write(e.buf[:])
}

func (e *encoder) str(s string) {
	e.tagged(3, uint64(len(s)))
	e.h.Write([]byte(s))
}

func (e *encoder) int(n int64) { e.tagged(1, uint64(n)) }

func (e *encoder) value(v any) error {
	switch x := v.(type) {
	case nil:
		e.h.Write([]byte{0})
	case int64:
		e.tagged(1, uint64(x))
	case float64:
		e.tagged(2, math.Float64bits(x))
	case string:
		e.str(x)
	case []byte:
		e.tagged(4, uint64(len(x)))
		e.h.Write(x)
	case bool:
		// Not produced for stored values; kept stable anyway.
		if x {
			e.tagged(1, 1)
		} else {
			e.tagged(1, 0)
		}
	case time.Time:
		return fmt.Errorf("unexpected time value %v: declared type leaked through", x)
	default:
		return fmt.Errorf("unexpected value of type %T", v)
	}
	return nil
}
