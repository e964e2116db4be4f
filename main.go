// Command sqlite-backup takes consistent, verified backups of live SQLite
// databases, verifies existing backup files and restores them. The
// command line lives in internal/cli; the work in the packages it calls.
package main

import (
	"os"

	"sqlite-backup/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
