package fsx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Prefixes of the private directories a run works in where no directory
// lock covers it (HeldDir): nothing else may use them.
const (
	// CheckDirPrefix: verify's decrypted or decompressed copy of a backup.
	CheckDirPrefix = ".sqlite-backup-check-"
	// FetchDirPrefix: a remote backup downloaded with its sidecars.
	FetchDirPrefix = ".sqlite-backup-fetch-"
)

var heldPrefixes = []string{CheckDirPrefix, FetchDirPrefix}

// HeldDir is a private (0700) directory that a run works in outside any
// directory lock, e.g. in the system temp dir, which many runs share.
// The run holds an flock on the directory for as long as it lives, so
// the kernel lets go when the run dies, even by SIGKILL, and the next
// run can tell a dead run's directory from a live one's (RemoveDead).
// What it holds (a decrypted database, a download) lasts no longer than
// the run that made it, or than the next run after a kill.
type HeldDir struct {
	Path string
	f    *os.File
}

// MkdirHeld creates a new HeldDir named prefix+<random> in parent
// (os.TempDir() when "").
func MkdirHeld(parent, prefix string) (*HeldDir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	for range 10 {
		p, err := os.MkdirTemp(parent, prefix)
		if err != nil {
			return nil, err
		}
		f, err := openDir(p)
		if err != nil {
			os.Remove(p)
			return nil, err
		}
		// A file system without flock: the directory works, unmarked,
		// and RemoveDead, which cannot lock it either, leaves it alone.
		if err := lockDir(f); err != nil {
			return &HeldDir{Path: p, f: f}, nil
		}
		// Another run's RemoveDead may have found the new, empty
		// directory before it was locked and removed it: then try again.
		if sameDir(f, p) {
			return &HeldDir{Path: p, f: f}, nil
		}
		f.Close()
	}
	return nil, errors.New("could not make a private directory that stays")
}

// Release removes the directory with everything in it, then lets go of
// the lock. A nil HeldDir is released already.
func (h *HeldDir) Release() {
	if h == nil || h.f == nil {
		return
	}
	os.RemoveAll(h.Path)
	h.f.Close()
	h.f = nil
}

// RemoveDead removes the HeldDirs in dir that belong to runs that died
// (no run holds their flock) and are owned by this user, and returns
// their names. It is safe to call at any time, without a directory
// lock: a live run's directory is locked and stays.
func RemoveDead(dir string) []string {
	if dir == "" {
		dir = os.TempDir()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !held(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := openDir(p)
		if err != nil {
			continue
		}
		if ownedByMe(f) && tryLockDir(f) && sameDir(f, p) {
			if os.RemoveAll(p) == nil {
				removed = append(removed, e.Name())
			}
		}
		f.Close()
	}
	return removed
}

func held(name string) bool {
	for _, p := range heldPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// sameDir says whether p still names the directory f has open.
func sameDir(f *os.File, p string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(p)
	return err == nil && os.SameFile(a, b)
}
