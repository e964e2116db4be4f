//go:build !linux

package restore

// Holders cannot tell on this platform; restores are offline unless
// --online is given.
func Holders(path string) ([]int, error) { return nil, nil }
