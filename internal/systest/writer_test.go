package systest

import (
	"bufio"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// writerMain is the "application" in end-to-end tests: a separate process
// that commits one row per transaction to a WAL database, with ids
// 1, 2, 3, … so a backup can be checked for holding exactly a prefix.
//
//	sqlwriter [-max N] [-ready FILE] [-blob BYTES] DB
//	sqlwriter -id K [-tables N] [-pause DUR] [-lat FILE] [-max N] [-ready FILE] DB
//	sqlwriter -hold DUR [-ready FILE] DB
//
// Without -id it writes table w(id, v). With -id K (K >= 1) it is one of
// several writers: commit n inserts (K, n, payload of rowSize(n) bytes)
// into table t<n mod N>, so a snapshot must hold n = 1..max for every K
// spread over all tables, and the payload sizes mix small rows with rows
// that spill onto overflow pages. -lat records every commit's start and
// latency (ns) to FILE at exit. -hold takes an EXCLUSIVE lock on a
// rollback-journal database, writes one row and keeps the lock for DUR
// (or until SIGTERM) before committing.
//
// It stops after -max rows (0: until SIGTERM) and prints how many rows it
// committed. Any failed commit is fatal: exit 1.
func writerMain(args []string) int {
	fs := flag.NewFlagSet("sqlwriter", flag.ContinueOnError)
	max := fs.Int("max", 0, "stop after this many rows")
	ready := fs.String("ready", "", "create this file after the first commit")
	blob := fs.Int("blob", 100, "bytes of payload per row")
	id := fs.Int("id", 0, "writer id for the multi-writer tables t0..tN-1")
	tables := fs.Int("tables", 3, "with -id: number of tables")
	pause := fs.Duration("pause", 0, "sleep between commits")
	latFile := fs.String("lat", "", "with -id: write commit start and latency (ns) to this file at exit")
	hold := fs.Duration("hold", 0, "hold an exclusive lock this long (rollback-journal database)")
	torture := fs.Int("torture", 0, "writer id for the torture schema (tortureSchema)")
	chaos := fs.String("chaos", "", "with -torture: comma-separated disturbances (tortureMain)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sqlwriter [-max N] [-ready FILE] [-blob BYTES] [-id K -tables N -pause DUR -lat FILE] [-hold DUR] DB")
		return 2
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if *hold > 0 {
		return holdLock(fs.Arg(0), *hold, *ready, stop)
	}
	if *torture > 0 {
		return tortureMain(fs.Arg(0), *torture, *max, *chaos, *ready, stop)
	}
	dsn := "file:" + fs.Arg(0) + "?_pragma=busy_timeout(5000)"
	if *id == 0 {
		dsn += "&_pragma=journal_mode(WAL)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if *id > 0 {
		return multiWriter(db, *id, *tables, *max, *pause, *ready, *latFile, stop)
	}
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		fmt.Fprintln(os.Stderr, "create:", err)
		return 1
	}
	var next int64
	if err := db.QueryRow("SELECT coalesce(max(id),0)+1 FROM w").Scan(&next); err != nil {
		fmt.Fprintln(os.Stderr, "max:", err)
		return 1
	}
	start := next
	for ; *max == 0 || next < start+int64(*max); next++ {
		select {
		case <-stop:
			fmt.Println(next - start)
			return 0
		default:
		}
		if _, err := db.Exec("INSERT INTO w(id, v) VALUES(?, randomblob(?))", next, *blob); err != nil {
			fmt.Fprintf(os.Stderr, "commit %d: %v\n", next, err)
			return 1
		}
		if next == start && *ready != "" {
			if err := os.WriteFile(*ready, nil, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		time.Sleep(0)
	}
	fmt.Println(next - start)
	return 0
}

// rowSize is the payload of writer row n: mostly small rows, every 8th
// larger than a 4096-byte page (an overflow chain), every 64th spanning
// many overflow pages.
func rowSize(n int64) int {
	switch {
	case n%64 == 0:
		return 70000
	case n%8 == 0:
		return 6000
	case n%8 <= 3:
		return 40
	}
	return 300
}

// rowSizeSQL is rowSize as an SQL expression over column seq, so a test
// can check every payload in a backup.
const rowSizeSQL = "CASE WHEN seq%64=0 THEN 70000 WHEN seq%8=0 THEN 6000 WHEN seq%8<=3 THEN 40 ELSE 300 END"

// multiWriterSchema creates the tables the -id writers use; the test runs
// it once before starting them, so writers never race on DDL.
func multiWriterSchema(tables int) string {
	s := "PRAGMA journal_mode=WAL;"
	for i := range tables {
		s += fmt.Sprintf("CREATE TABLE IF NOT EXISTS t%d(w INTEGER NOT NULL, seq INTEGER NOT NULL, v BLOB, PRIMARY KEY(w, seq));", i)
	}
	return s
}

func multiWriter(db *sql.DB, id, tables, max int, pause time.Duration, ready, latFile string, stop chan os.Signal) int {
	var lat [][2]int64
	var n int64
	defer func() {
		if latFile == "" {
			return
		}
		f, err := os.Create(latFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		w := bufio.NewWriter(f)
		for _, l := range lat {
			fmt.Fprintf(w, "%d %d\n", l[0], l[1])
		}
		w.Flush()
		f.Close()
	}()
	for n = 1; max == 0 || n <= int64(max); n++ {
		select {
		case <-stop:
			fmt.Println(n - 1)
			return 0
		default:
		}
		t0 := time.Now()
		q := fmt.Sprintf("INSERT INTO t%d(w, seq, v) VALUES(?, ?, randomblob(?))", n%int64(tables))
		if _, err := db.Exec(q, id, n, rowSize(n)); err != nil {
			fmt.Fprintf(os.Stderr, "writer %d commit %d: %v\n", id, n, err)
			return 1
		}
		lat = append(lat, [2]int64{t0.UnixNano(), int64(time.Since(t0))})
		if n == 1 && ready != "" {
			if err := os.WriteFile(ready, nil, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		time.Sleep(pause)
	}
	fmt.Println(n - 1)
	return 0
}

// holdLock keeps an EXCLUSIVE lock on a rollback-journal database: no
// other connection can read it until the lock is released.
func holdLock(path string, d time.Duration, ready string, stop chan os.Signal) int {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(DELETE)")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"CREATE TABLE IF NOT EXISTS held(x)", "BEGIN EXCLUSIVE", "INSERT INTO held VALUES(1)"} {
		if _, err := db.Exec(q); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", q, err)
			return 1
		}
	}
	if ready != "" {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	select {
	case <-time.After(d):
	case <-stop:
	}
	if _, err := db.Exec("COMMIT"); err != nil {
		fmt.Fprintln(os.Stderr, "commit:", err)
		return 1
	}
	fmt.Println(1)
	return 0
}
