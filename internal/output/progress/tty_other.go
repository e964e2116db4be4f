//go:build !linux

package progress

import "os"

func isTerminal(*os.File) bool { return false }
