//go:build !linux

package verify

import (
	"context"
	"database/sql"
)

// prefault is a Linux optimization (see prefault_linux.go); elsewhere the
// check takes its page faults as it goes.
func prefault(ctx context.Context, db *sql.DB, path string) (stop func(), err error) {
	return func() {}, nil
}
