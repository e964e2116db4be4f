//go:build !unix

package metrics

// lockDir: no advisory locks here; concurrent writers may lose an update.
func lockDir(string) (func(), error) { return func() {}, nil }
