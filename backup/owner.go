package backup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/remote"
)

// readOwnerID returns the owner ID of a backup directory ("" when it has
// none yet). The ID, not the host name or the path, says whose backups
// on a remote are this directory's: it moves with the directory and
// stays when a container gets a new host name; another host or another
// directory has another.
func readOwnerID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, remote.IDFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read owner ID %q: %w", filepath.Join(dir, remote.IDFile), fsx.PathErr(err))
	}
	id := strings.TrimSpace(string(b))
	if len(id) < 16 || strings.ContainsAny(id, " \t\r\n") {
		return "", fmt.Errorf("owner ID %q: %q is not an ID this tool writes", filepath.Join(dir, remote.IDFile), id)
	}
	return id, nil
}

// ownerID returns dir's owner ID, creating it when there is none: a new
// random ID, written to a private temp file, fsynced and linked under
// its name only if no other run made one first.
func ownerID(dir string) (string, error) {
	if id, err := readOwnerID(dir); id != "" || err != nil {
		return id, err
	}
	var rnd [16]byte
	rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	p := filepath.Join(dir, remote.IDFile)
	f, err := fsx.CreateTemp(dir, remote.IDFile, 0o600)
	if err != nil {
		return "", fmt.Errorf("write owner ID %q: %w", p, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A link never replaces: a run that made one first wins.
		err = os.Link(tmp, p)
	}
	if errors.Is(err, fs.ErrExist) {
		return readOwnerID(dir)
	}
	if err != nil {
		return "", fmt.Errorf("write owner ID %q: %w", p, fsx.PathErr(err))
	}
	fsx.SyncDir(dir)
	return id, nil
}

// hostName names this machine in manifests and messages.
func hostName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

// OwnerOf is the owner on a remote of src's backups in dir, for the
// commands that work on a remote on their own (prune --remote): only
// what dir's runs sent is theirs to remove.
func OwnerOf(dir, src string) (remote.Owner, error) {
	return ownerOf(Options{Backup: snapshot.Options{Dir: dir, Source: src}}, false)
}
