//go:build !linux

package backup

func writeCause() string { return "" }
