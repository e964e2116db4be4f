package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"sqlite-backup/internal/sys/fault"
)

// A connection that may not write does not parse CHECK constraints
// (SQLite's build.c keeps them only where the b-tree is writable), and
// every check here is read-only: integrity_check and quick_check then
// neither test rows against their CHECKs nor fail a schema whose CHECK
// text names no column of its table, where the C sqlite3 CLI's
// read-write integrity_check reports "CHECK constraint failed in t" or
// "malformed database schema". checkConstraints does that part itself,
// never writing to the checked file:
//
//   - each table's CREATE TABLE text is replayed into a private
//     in-memory database that may write, where SQLite parses and
//     resolves the CHECKs as a read-write connection would; an error
//     is the schema's, in SQLite's words;
//   - each table's CHECK expressions, cut from that text, are evaluated
//     over its rows: SELECT count(*) FROM t WHERE NOT (e1) OR NOT (e2)…;
//     a CHECK is violated by false only, and NOT NULL is NULL, which
//     selects no row, as a NULL passes a CHECK.

// schemaTable is one table's row of sqlite_schema.
type schemaTable struct{ name, sql string }

// constraintPlan is the CHECK part of a check, planned before the check
// runs so that its table scans can run beside it (parallelPlan, or
// SQLite's own check on another connection): the schema's problems,
// found by replaying it, and one scan per sound table with CHECKs.
type constraintPlan struct {
	schema []string
	scans  []constraintScan
}

// constraintScan counts the rows of one table that break its CHECKs.
type constraintScan struct{ table, query string }

// planConstraints returns nil when no table has a CHECK. Its reads of db
// are guarded like the checks' (queryRows).
func planConstraints(ctx context.Context, db *sql.DB) (*constraintPlan, error) {
	var tables []schemaTable
	err := queryRows(ctx, db, "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql IS NOT NULL ORDER BY rowid", func(r *sql.Rows) error {
		var t schemaTable
		if err := r.Scan(&t.name, &t.sql); err != nil {
			return err
		}
		tables = append(tables, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var withChecks []schemaTable
	for _, t := range tables {
		if len(checkExprs(t.sql)) > 0 {
			withChecks = append(withChecks, t)
		}
	}
	if len(withChecks) == 0 {
		return nil, nil
	}
	bad, err := replaySchema(ctx, withChecks)
	if err != nil {
		return nil, err
	}
	p := &constraintPlan{}
	for _, t := range tables {
		if msg, ok := bad[t.name]; ok {
			p.schema = append(p.schema, fmt.Sprintf("malformed database schema (%s) - %s", t.name, msg))
		}
	}
	for _, t := range withChecks {
		if _, ok := bad[t.name]; ok {
			continue
		}
		var cond []string
		for _, e := range checkExprs(t.sql) {
			cond = append(cond, "NOT ("+e+")")
		}
		p.scans = append(p.scans, constraintScan{t.name, fmt.Sprintf("SELECT count(*) FROM main.%s WHERE %s", ident(t.name), strings.Join(cond, " OR "))})
	}
	return p, nil
}

// run scans the table and returns its problem, if any. An expression
// that cannot be evaluated is a problem too; only cancellation and a
// memory fault are errors.
func (c constraintScan) run(ctx context.Context, db *sql.DB) ([]string, error) {
	var n int64
	err := queryRows(ctx, db, c.query, func(r *sql.Rows) error {
		return r.Scan(&n)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, fault.ErrFault) {
			return nil, err
		}
		// It runs in no read-write connection either (a function
		// or collation the application registers, at best).
		return []string{fmt.Sprintf("CHECK constraint of %s cannot be evaluated: %v", c.table, err)}, nil
	}
	if n > 0 {
		return []string{fmt.Sprintf("CHECK constraint failed in %s (%d rows)", c.table, n)}, nil
	}
	return nil, nil
}

// checkConstraints returns the schema's and the rows' CHECK problems,
// at most max, scanning the tables one after another on db.
func checkConstraints(ctx context.Context, db *sql.DB, max int) ([]string, error) {
	p, err := planConstraints(ctx, db)
	if err != nil || p == nil {
		return nil, err
	}
	problems := p.schema
	for _, c := range p.scans {
		if len(problems) >= max {
			break
		}
		more, err := c.run(ctx, db)
		if err != nil {
			return nil, err
		}
		problems = append(problems, more...)
	}
	return problems[:min(len(problems), max)], nil
}

// replaySchema creates the ordinary tables in a private in-memory
// database and returns, by table name, the error SQLite gave for each
// that did not parse. A function or collation SQLite does not know is
// no schema error: a connection reading a schema lets them be (the
// application may register them), and the CHECK's evaluation says.
func replaySchema(ctx context.Context, tables []schemaTable) (map[string]string, error) {
	mem, err := sql.Open("sqlite", "file:verify-schema?mode=memory")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	mem.SetMaxOpenConns(1) // one connection: one private database
	bad := map[string]string{}
	for _, t := range tables {
		if strings.HasPrefix(strings.ToLower(t.name), "sqlite_") || isVirtual(t.sql) {
			continue // created by SQLite itself, or by a module
		}
		if _, err := mem.ExecContext(ctx, t.sql); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			msg := err.Error()
			if i := strings.LastIndex(msg, " ("); i > 0 && strings.HasSuffix(msg, ")") {
				msg = msg[:i] // the result code
			}
			msg = strings.TrimPrefix(msg, "SQL logic error: ")
			if strings.HasPrefix(msg, "no such function") || strings.HasPrefix(msg, "no such collation") {
				continue
			}
			bad[t.name] = msg
		}
	}
	return bad, nil
}

func isVirtual(create string) bool {
	toks := tokens(create)
	return len(toks) >= 2 && strings.EqualFold(toks[1].text, "virtual")
}

// checkExprs cuts the CHECK expressions out of a CREATE TABLE text.
// CHECK is a reserved word: unquoted, it is a constraint, whatever its
// place, and the balanced parentheses that follow hold the expression.
func checkExprs(create string) []string {
	toks := tokens(create)
	var out []string
	for i := 0; i < len(toks); i++ {
		if toks[i].kind != tokWord || !strings.EqualFold(toks[i].text, "check") || i+1 >= len(toks) || toks[i+1].text != "(" {
			continue
		}
		depth, start := 0, toks[i+1].end
		for j := i + 1; j < len(toks); j++ {
			switch toks[j].text {
			case "(":
				depth++
			case ")":
				depth--
			}
			if depth == 0 && toks[j].kind == tokPunct {
				out = append(out, strings.TrimSpace(create[start:toks[j].start]))
				i = j
				break
			}
		}
	}
	return out
}

type tokKind int

const (
	tokWord   tokKind = iota // keyword or bare identifier
	tokQuoted                // '…', "…", `…`, […]
	tokPunct                 // anything else, one byte
)

type token struct {
	kind       tokKind
	text       string
	start, end int
}

// tokens splits SQL text as SQLite's tokenizer would for what checkExprs
// needs: comments and white space dropped, quoted strings and names
// kept whole (so that a parenthesis or the word CHECK inside them is not
// taken for one), words, and single bytes.
func tokens(s string) []token {
	var out []token
	isWord := func(c byte, first bool) bool {
		return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z') || (!first && (c == '$' || (c >= '0' && c <= '9')))
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				i = len(s)
			} else {
				i += j + 4
			}
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end := c
			if c == '[' {
				end = ']'
			}
			j := i + 1
			for j < len(s) {
				if s[j] == end {
					if end != ']' && j+1 < len(s) && s[j+1] == end {
						j += 2 // a doubled quote
						continue
					}
					break
				}
				j++
			}
			j = min(j+1, len(s))
			out = append(out, token{tokQuoted, s[i:j], i, j})
			i = j
		case isWord(c, false):
			j := i + 1
			for j < len(s) && isWord(s[j], false) {
				j++
			}
			out = append(out, token{tokWord, s[i:j], i, j})
			i = j
		default:
			out = append(out, token{tokPunct, s[i : i+1], i, i + 1})
			i++
		}
	}
	return out
}
