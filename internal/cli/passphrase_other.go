//go:build !linux

package cli

import "sqlite-backup/internal/format/encrypt"

// ttyPassphrase: the terminal prompt is implemented for Linux only.
func ttyPassphrase(string) ([]byte, error) { return nil, encrypt.ErrNoTerminal }
