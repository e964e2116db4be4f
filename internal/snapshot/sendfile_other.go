//go:build !linux

package snapshot

import (
	"context"
	"os"
)

// copyInKernel exists on Linux only; elsewhere the copy reads and writes.
func copyInKernel(context.Context, *sourceFiles, *filePlan, *os.File, *followHash, func(done, total int)) (bool, error) {
	return false, nil
}

func preallocate(*os.File, int64) error { return nil }

func lowerThreadPriority() {}
