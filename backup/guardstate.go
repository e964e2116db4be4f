package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/retention"
	"sqlite-backup/internal/snapshot"
)

// GuardStateName is the backup directory's private record of the row
// counts of each database's newest verified encrypted backup. Beside an
// encrypted backup the counts are sealed to its recipients, whose keys
// should not be on the host; the host holds the plaintext database
// anyway, so it keeps the counts the shrink guard compares with here,
// 0600, under a dot-name that retention, list and remote sync never
// match (they take exact backup names only). Remote sync and any copy
// of the backup directory made by hand must leave out ".sqlite-backup*".
const GuardStateName = ".sqlite-backup.guard"

const guardStateVersion = 1

// guardState is the file's content.
type guardState struct {
	Version int `json:"version"`
	// Databases by absolute source path: several databases may share a
	// backup directory, and two with the same file name must not mix.
	Databases map[string]*guardEntry `json:"databases"`
}

// guardEntry names the backup the counts are of, by name, SHA-256 and
// size, so that they are used only for that exact file.
type guardEntry struct {
	Backup string `json:"backup"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Tables has names and row counts only, never --deep's hashes: the
	// guard needs no more.
	Tables []manifest.Table `json:"tables"`
}

// readGuardState reads dir's state. A missing file is an empty state; a
// file that is not ours to trust (not a regular file, not private, or
// owned by another user, who could have written any counts) or that does
// not parse is reported as an error and then treated as empty.
func readGuardState(dir string) (*guardState, error) {
	st := &guardState{Version: guardStateVersion, Databases: map[string]*guardEntry{}}
	p := filepath.Join(dir, GuardStateName)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if !fi.Mode().IsRegular() {
		return st, fmt.Errorf("%s is not a regular file", GuardStateName)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return st, fmt.Errorf("%s is readable or writable by others (mode %04o)", GuardStateName, fi.Mode().Perm())
	}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok && int(s.Uid) != os.Geteuid() {
		return st, fmt.Errorf("%s belongs to uid %d, not to this user", GuardStateName, s.Uid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return st, err
	}
	var got guardState
	if err := json.Unmarshal(b, &got); err != nil || got.Version != guardStateVersion {
		return st, fmt.Errorf("%s is not a state file of this version", GuardStateName)
	}
	if got.Databases != nil {
		st.Databases = got.Databases
	}
	return st, nil
}

// write replaces dir's state (private temp file, fsync, rename), or
// removes the file when no database has an entry left.
func (st *guardState) write(dir string) error {
	p := filepath.Join(dir, GuardStateName)
	if len(st.Databases) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return manifest.WriteAtomic(p, append(b, '\n'))
}

// guardCounts returns the recorded counts of backup b (manifest m) of
// source, or nil when the state has none for exactly that file.
func guardCounts(dir, source string, b retention.Backup, m *manifest.Manifest) *manifest.Content {
	st, err := readGuardState(dir)
	if err != nil {
		return nil
	}
	e := st.Databases[source]
	if e == nil || e.Backup != b.Name || e.SHA256 == "" || e.SHA256 != m.SHA256 || e.Size != b.Size {
		return nil
	}
	if sum, err := manifest.ReadSHA256(b.Path); err != nil || sum != e.SHA256 {
		return nil
	}
	return &manifest.Content{From: "state", Tables: e.Tables}
}

// recordGuard keeps dir's state in step with the backup just published
// (manifest m, as written before sealing), under the directory lock:
// a verified encrypted backup with row counts, made with the guard on,
// becomes its database's entry; a verified backup that is not encrypted
// (its counts are in its manifest in the clear) or made with the guard
// off drops the entry, so no counts are kept that nothing needs. A
// backup that was not verified, or has no counts, changes nothing: the
// guard's next comparison is with the newest verified backup, still the
// one recorded. It reports whether the backup's counts were recorded.
func recordGuard(dir string, res *snapshot.Result, m *manifest.Manifest, guard float64) (bool, error) {
	if !verified(res) {
		return false, nil
	}
	keep := res.Encryption != "" && guard > 0
	if keep && m.Content == nil {
		return false, nil
	}
	st, err := readGuardState(dir)
	if err != nil && !keep {
		// Not ours to trust, and nothing to record: leave it alone.
		return false, nil
	}
	if !keep {
		if _, ok := st.Databases[res.Source]; !ok {
			return false, nil
		}
		delete(st.Databases, res.Source)
	} else {
		e := &guardEntry{Backup: filepath.Base(res.Path), SHA256: m.SHA256, Size: res.Size, Tables: []manifest.Table{}}
		for _, t := range m.Content.Tables {
			e.Tables = append(e.Tables, manifest.Table{Name: t.Name, Rows: t.Rows})
		}
		st.Databases[res.Source] = e
	}
	if err := st.write(dir); err != nil {
		return false, fmt.Errorf("record row counts for the shrink guard in %q: %w", filepath.Join(dir, GuardStateName), err)
	}
	return keep, nil
}
