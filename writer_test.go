package main

import (
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
//
// It stops after -max rows (0: until SIGTERM) and prints how many rows it
// committed. Any failed commit is fatal: exit 1.
func writerMain(args []string) int {
	fs := flag.NewFlagSet("sqlwriter", flag.ContinueOnError)
	max := fs.Int("max", 0, "stop after this many rows")
	ready := fs.String("ready", "", "create this file after the first commit")
	blob := fs.Int("blob", 100, "bytes of payload per row")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sqlwriter [-max N] [-ready FILE] [-blob BYTES] DB")
		return 2
	}
	db, err := sql.Open("sqlite", "file:"+fs.Arg(0)+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		fmt.Fprintln(os.Stderr, "create:", err)
		return 1
	}
	var next int64
	if err := db.QueryRow("SELECT coalesce(max(id),0)+1 FROM w").Scan(&next); err != nil {
		fmt.Fprintln(os.Stderr, "max:", err)
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
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
