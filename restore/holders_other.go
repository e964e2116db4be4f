//go:build !linux

package restore

// Holders cannot tell on this platform.
func Holders(path string) ([]int, error) { return nil, nil }

// holdersVisible is false: an existing database is restored online
// unless --offline is given.
func holdersVisible() bool { return false }

// command cannot tell on this platform.
func command(pid int) string { return "" }
