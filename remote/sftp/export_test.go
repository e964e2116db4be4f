package sftp

import "time"

// SetHashFloor sets the least wait for the server's hash for a test;
// the returned func restores it.
func SetHashFloor(d time.Duration) (restore func()) {
	old := hashFloor
	hashFloor = d
	return func() { hashFloor = old }
}
