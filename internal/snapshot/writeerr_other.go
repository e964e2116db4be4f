//go:build !linux

package snapshot

func writeCause() string { return "" }
