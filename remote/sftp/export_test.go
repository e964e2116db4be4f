package sftp

import "time"

// SetHashFloor sets the least wait for the server's hash for a test;
// the returned func restores it.
func SetHashFloor(d time.Duration) (restore func()) {
	old := hashFloor
	hashFloor = d
	return func() { hashFloor = old }
}

// SetReadChunk sets the length of a download's read requests for a
// test; the returned func restores it.
func SetReadChunk(n int) (restore func()) {
	old := readChunk
	readChunk = n
	return func() { readChunk = old }
}

// ReadChunk is the default length of a download's read requests.
func ReadChunk() int { return readChunk }
