package systest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"
)

// The torture writer keeps invariants that any consistent snapshot of
// its database holds, whatever else the writer does to the files:
//
//   - log: writer K's rows have seq 1..n, no gap, and each row's v is
//     exactly tortureV(K, seq), byte for byte;
//   - acct: tortureAccounts rows whose balances always sum to
//     tortureTotal: every commit moves an amount between two of them in
//     the same transaction as its log row.
//
// Between commits it disturbs the database as -chaos says: ckpt (a
// checkpoint of a random kind: PASSIVE, FULL, RESTART, TRUNCATE), reopen
// (close its connection, the last one's close checkpoints and removes
// -wal/-shm, and open anew), mode (switch WAL <-> DELETE: only succeeds
// while no other connection is open, so a failure is not fatal), vacuum
// (VACUUM, which rewrites and shrinks the file), shrink (insert a batch
// of filler rows, delete them, incremental_vacuum), grow (a burst of
// small commits that each add a page or so to the file, then one that
// deletes them: with auto_vacuum the file shrinks again, so the next
// burst grows it anew).
//
// $TORTURE_JOURNAL_MODE, if set, is the journal mode every connection of
// the writer sets as it opens (DELETE, TRUNCATE, PERSIST, MEMORY, OFF,
// WAL); the rollback modes other than the default are per connection, so
// the test cannot set them once on the file.
const (
	tortureAccounts = 64
	tortureTotal    = tortureAccounts * 1000
)

// tortureSchema creates the tables once, before the writers start.
func tortureSchema(pageSize int, autoVacuum string) string {
	return fmt.Sprintf("PRAGMA page_size=%d; PRAGMA auto_vacuum=%s; PRAGMA journal_mode=WAL;"+
		"CREATE TABLE log(w INTEGER NOT NULL, seq INTEGER NOT NULL, v BLOB NOT NULL, PRIMARY KEY(w, seq));"+
		"CREATE INDEX log_v ON log(length(v), w);"+
		"CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);"+
		"CREATE TABLE filler(x BLOB);"+
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO acct SELECT i, 1000 FROM c;",
		pageSize, autoVacuum, tortureAccounts)
}

// tortureVSQL is tortureV as an SQL expression over columns w and seq:
// a text of a length that mixes small rows with rows spilling onto
// overflow pages, of one letter that depends on both.
const tortureVSQL = "printf('%.*c', CASE WHEN seq % 16 = 0 THEN 9000 WHEN seq % 4 = 0 THEN 700 ELSE 20 + seq % 50 END, char(65 + (w * 7 + seq) % 26))"

func tortureV(w, seq int64) string {
	n := 20 + seq%50
	switch {
	case seq%16 == 0:
		n = 9000
	case seq%4 == 0:
		n = 700
	}
	return strings.Repeat(string(rune('A'+(w*7+seq)%26)), int(n))
}

func tortureMain(path string, id, max int, chaos, ready string, stop chan os.Signal) int {
	want := map[string]bool{}
	for _, c := range strings.Split(chaos, ",") {
		want[c] = c != ""
	}
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)"
	journal := os.Getenv("TORTURE_JOURNAL_MODE")
	if journal != "" {
		dsn += "&_pragma=journal_mode(" + journal + ")"
	}
	open := func() (*sql.DB, error) {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		if journal != "" {
			// The pragma ran as the connection opened: make sure it took.
			var got string
			if err := db.QueryRow("PRAGMA journal_mode").Scan(&got); err != nil {
				db.Close()
				return nil, err
			}
			if !strings.EqualFold(got, journal) {
				db.Close()
				return nil, fmt.Errorf("journal_mode is %s, not %s", got, journal)
			}
		}
		return db, nil
	}
	db, err := open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { db.Close() }()
	// What the disturbances did, printed at exit to stderr for the test
	// to report: "chaos ckpt-ok 12 mode-failed 3 …".
	did := map[string]int{}
	defer func() {
		var parts []string
		for k, v := range did {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		fmt.Fprintln(os.Stderr, "chaos", strings.Join(parts, " "))
	}()
	note := func(what string, err error) {
		if err != nil {
			did[what+"-failed"]++
		} else {
			did[what+"-ok"]++
		}
	}
	var n int64
	for n = 1; max == 0 || n <= int64(max); n++ {
		select {
		case <-stop:
			fmt.Println(n - 1)
			return 0
		default:
		}
		a, b := 1+rng.IntN(tortureAccounts), 1+rng.IntN(tortureAccounts)
		amt := rng.IntN(50)
		err := commitTx(db, []string{
			"BEGIN IMMEDIATE",
			fmt.Sprintf("INSERT INTO log(w, seq, v) VALUES(%d, %d, '%s')", id, n, tortureV(int64(id), n)),
			fmt.Sprintf("UPDATE acct SET bal = bal - %d WHERE id = %d", amt, a),
			fmt.Sprintf("UPDATE acct SET bal = bal + %d WHERE id = %d", amt, b),
			"COMMIT",
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "writer %d commit %d: %v\n", id, n, err)
			return 1
		}
		if n == 1 && ready != "" {
			if err := os.WriteFile(ready, nil, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		// Disturbances: their failures (busy, a mode switch refused
		// while others have the database open) are part of the game.
		r := rng.IntN(100)
		switch {
		case want["ckpt"] && r < 12:
			kinds := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
			k := kinds[rng.IntN(len(kinds))]
			var busy int
			err := db.QueryRow("PRAGMA wal_checkpoint("+k+")").Scan(&busy, new(int), new(int))
			if err == nil && busy != 0 {
				err = fmt.Errorf("busy")
			}
			note("ckpt-"+strings.ToLower(k), err)
		case want["reopen"] && r < 18:
			note("reopen", db.Close())
			if db, err = open(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		case want["mode"] && r < 24:
			mode := "DELETE"
			if rng.IntN(2) == 0 {
				mode = "WAL"
			}
			var got string
			err := db.QueryRow("PRAGMA journal_mode=" + mode).Scan(&got)
			if err == nil && !strings.EqualFold(got, mode) {
				err = fmt.Errorf("still %s", got)
			}
			note("to-"+strings.ToLower(mode), err)
		case want["vacuum"] && r < 27:
			_, err := db.Exec("VACUUM")
			note("vacuum", err)
		case want["shrink"] && r < 32:
			db.Exec("INSERT INTO filler SELECT randomblob(3000) FROM acct")
			db.Exec("DELETE FROM filler")
			_, err := db.Exec("PRAGMA incremental_vacuum")
			note("shrink", err)
		case want["grow"] && r < 40:
			// Without fsyncs the burst commits as fast as the CPU
			// allows: many growing commits a second.
			var sync int
			err := db.QueryRow("PRAGMA synchronous").Scan(&sync)
			if err == nil {
				_, err = db.Exec("PRAGMA synchronous=OFF")
			}
			for i := 0; i < 50 && err == nil; i++ {
				_, err = db.Exec("INSERT INTO filler VALUES(randomblob(1500))")
			}
			if err == nil {
				_, err = db.Exec("DELETE FROM filler")
			}
			if err == nil {
				_, err = db.Exec("PRAGMA incremental_vacuum")
			}
			if err == nil {
				_, err = db.Exec(fmt.Sprintf("PRAGMA synchronous=%d", sync))
			}
			note("grow", err)
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	fmt.Println(n - 1)
	return 0
}

// commitTx runs the statements of one transaction on one connection,
// rolling back on a failure.
func commitTx(db *sql.DB, qs []string) error {
	conn, err := db.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range qs {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return fmt.Errorf("%.60s: %w", q, err)
		}
	}
	return nil
}
