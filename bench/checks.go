package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// With -checks the benchmark measures verify on databases whose large
// table carries CHECK constraints, against the C CLI's read-write
// integrity_check (which evaluates CHECKs too), on both of verify's
// check paths: the parallel plan, and SQLite's own check for a schema
// the plan does not cover (here: one small WITHOUT ROWID table more).
// The databases are made from the reference copy: the CHECKs by
// rewriting the table's CREATE TABLE text (every row satisfies them,
// and CHECKs change nothing that is stored), the extra table with the
// C CLI. They are kept in -dir and reused.

// checkVariant is one of the databases.
type checkVariant struct {
	name, path string
	checks     bool
}

// checkDDL adds three CHECKs that every generated row satisfies.
const checkDDL = `PRAGMA writable_schema=ON;
UPDATE sqlite_schema SET sql = replace(replace(replace(sql,
  'k INTEGER', 'k INTEGER CHECK (k >= 0)'),
  'name TEXT', 'name TEXT CHECK (typeof(name) = ''text'' AND length(name) = 24)'),
  'body BLOB', 'body BLOB CHECK (length(body) BETWEEN 100 AND 500)')
WHERE type = 'table' AND name = 't';
PRAGMA writable_schema=OFF;
`

// singleDDL makes the schema one the parallel plan does not take.
const singleDDL = `CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO kv VALUES ('a', 1), ('b', 2);
`

func checkVariants(ref, dir string, logf func(string, ...any)) ([]checkVariant, error) {
	vs := []checkVariant{
		{"no CHECK", ref, false},
		{"CHECKs", filepath.Join(dir, "chk-checks.db"), true},
		{"no CHECK, SQLite's check", filepath.Join(dir, "chk-single.db"), false},
		{"CHECKs, SQLite's check", filepath.Join(dir, "chk-checks-single.db"), true},
	}
	for _, v := range vs[1:] {
		if _, err := os.Stat(v.path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		logf("making %s (%s)", v.path, v.name)
		tmp := v.path + ".part"
		removeDB(tmp)
		if out, err := exec.Command("cp", ref, tmp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cp: %v: %s", err, out)
		}
		script := ""
		if v.checks {
			script += checkDDL
		}
		if strings.Contains(v.name, "SQLite's check") {
			script += singleDDL
		}
		cmd := exec.Command("sqlite3", tmp)
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sqlite3 %s: %v: %s", tmp, err, out)
		}
		if err := os.Rename(tmp, v.path); err != nil {
			return nil, err
		}
	}
	return vs, nil
}

func caseCheckC(v checkVariant) string    { return "C integrity_check (" + v.name + ")" }
func caseCheckOurs(v checkVariant) string { return "sqlite-backup verify (" + v.name + ")" }

const (
	caseCheckCQuick    = "C quick_check (CHECKs)"
	caseCheckOursQuick = "sqlite-backup verify --quick (CHECKs)"
)

// checkCases times each variant with the C CLI and with each build
// (bins: label and binary; "" is this build).
func checkCases(vs []checkVariant, bins [][2]string) []benchCase {
	var cs []benchCase
	for _, v := range vs {
		cs = append(cs, benchCase{name: caseCheckC(v), steps: []step{{argv: []string{"sqlite3", v.path, "PRAGMA integrity_check"}, want: "ok"}}})
		for _, b := range bins {
			cs = append(cs, benchCase{name: prefix(b[0]) + caseCheckOurs(v), steps: []step{{argv: []string{b[1], "verify", v.path}, want: ": ok"}}})
		}
		if v.checks && !strings.Contains(v.name, "SQLite's check") {
			cs = append(cs, benchCase{name: caseCheckCQuick, steps: []step{{argv: []string{"sqlite3", v.path, "PRAGMA quick_check"}, want: "ok"}}})
			for _, b := range bins {
				cs = append(cs, benchCase{name: prefix(b[0]) + caseCheckOursQuick, steps: []step{{argv: []string{b[1], "verify", "--quick", v.path}, want: ": ok"}}})
			}
		}
	}
	return cs
}

func prefix(label string) string {
	if label == "" {
		return ""
	}
	return label + ": "
}

// printCheckRatios gives verify / C for each variant and build.
func printCheckRatios(w io.Writer, res []*caseResult, vs []checkVariant, labels []string) {
	fmt.Fprintln(w, "| database | build | verify | C integrity_check | ratio | target |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | --- |")
	row := func(what, label, ours, c string, target float64) {
		a, b := find(res, prefix(label)+ours), find(res, c)
		if a == nil || b == nil || b.median() == 0 {
			return
		}
		r := a.median().Seconds() / b.median().Seconds()
		t := ""
		if target > 0 && label == "" {
			verdict := "met"
			if r > target {
				verdict = "NOT met"
			}
			t = fmt.Sprintf("≤ %.2f: %s", target, verdict)
		}
		if label == "" {
			label = "this"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %s |\n", what, label, secs(a.median()), secs(b.median()), r, t)
	}
	for _, v := range vs {
		for _, l := range append([]string{""}, labels...) {
			target := 0.0
			if v.checks {
				target = 0.75
			}
			row(v.name, l, caseCheckOurs(v), caseCheckC(v), target)
		}
		if v.checks && !strings.Contains(v.name, "SQLite's check") {
			for _, l := range append([]string{""}, labels...) {
				row(v.name+", --quick against C quick_check", l, caseCheckOursQuick, caseCheckCQuick, 0)
			}
		}
	}
	fmt.Fprintln(w)
}
