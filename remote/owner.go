package remote

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/retention"
)

// Owner is whose backups a run sends and prunes: one database (Source)
// backed up into one backup directory, which is known by the ID kept in
// that directory (.sqlite-backup-id, so it moves with the directory and
// survives a new host name); Host and Dir name the owner in messages.
// Every manifest records its owner, so a run touches only its own
// backups on a remote, and a place that holds another owner's backups
// of the same database file name is refused, never shared.
type Owner struct {
	ID     string // "" until the directory has one
	Host   string
	Dir    string
	Source string
}

// Owns says whether a backup whose manifest is m is o's: the same
// database, and the same backup directory. A manifest without an owner
// (written before owners were recorded) counts by its source alone.
func (o Owner) Owns(m *manifest.Manifest) bool {
	if m.Source != "" && m.Source != o.Source {
		return false
	}
	return m.Owner == "" || m.Owner == o.ID
}

// describe names the owner a manifest records, for messages.
func describe(m *manifest.Manifest) string {
	s := fmt.Sprintf("database %s", orUnknown(m.Source))
	if m.BackupDir != "" || m.Host != "" {
		s += fmt.Sprintf(", backup dir %s on host %s", orUnknown(m.BackupDir), orUnknown(m.Host))
	}
	if m.Owner != "" {
		s += ", owner " + m.Owner
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "(not recorded)"
	}
	return s
}

// foreign is a complete backup on a remote that is not the owner's.
type foreign struct {
	name string
	m    *manifest.Manifest
}

// inventory is what a remote holds of one database file name's backups.
type inventory struct {
	objs       map[string]Object
	mine       []retention.Backup            // complete, the owner's, newest first
	manifests  map[string]*manifest.Manifest // of mine, by name
	foreign    []foreign                     // complete, another owner's, newest first
	incomplete []string                      // lacking a sidecar: whose is unknown
}

// inspect lists a remote and reads the manifest of every complete
// backup with the owner's database file name.
func inspect(ctx context.Context, r Remote, o Owner, loc *time.Location, retry func(func() error) error) (*inventory, error) {
	var objs []Object
	if err := retry(func() (err error) { objs, err = r.List(ctx); return err }); err != nil {
		return nil, err
	}
	inv := &inventory{objs: map[string]Object{}, manifests: map[string]*manifest.Manifest{}}
	for _, ob := range objs {
		inv.objs[ob.Name] = ob
	}
	for _, e := range entries(objs, []string{filepath.Base(o.Source)}, loc) {
		if !e.Complete {
			inv.incomplete = append(inv.incomplete, e.Name)
			continue
		}
		var m *manifest.Manifest
		if err := retry(func() (err error) { m, err = readManifest(ctx, r, e.Name); return err }); err != nil {
			return nil, err
		}
		if !o.Owns(m) {
			inv.foreign = append(inv.foreign, foreign{e.Name, m})
			continue
		}
		inv.mine = append(inv.mine, e.Backup)
		inv.manifests[e.Name] = m
	}
	return inv, nil
}

// conflict refuses a place that holds another owner's backups of this
// database file name: sharing it, each run's retention would count the
// other's backups as its own, or two backups taken in the same second
// would claim one name.
func (inv *inventory) conflict(url string, o Owner) error {
	if len(inv.foreign) == 0 {
		return nil
	}
	f := inv.foreign[0]
	err := &Error{URL: url, Kind: KindConflict, Err: fmt.Errorf("it holds %d backup(s) of %s that another run owns (newest %s: %s); this run's: database %s, backup dir %s on host %s: refused, so that neither prunes or cleans up the other's backups",
		len(inv.foreign), filepath.Base(o.Source), f.name, describe(f.m), o.Source, o.Dir, o.Host)}
	m := f.m
	if m.Owner != "" && m.Source == o.Source && m.BackupDir == o.Dir && m.Host == o.Host {
		// The same directory on the same host under another ID: its ID
		// file was removed or replaced.
		return hint.Wrap(err, "if those backups are this directory's, give it back its ID: printf '%%s\\n' %s > %s", hint.Quote(m.Owner), hint.Quote(filepath.Join(o.Dir, IDFile)))
	}
	return hint.Wrap(err, "give each database and backup directory its own remote directory or prefix, e.g. --remote %s", hint.Quote(url+"/"+safeHost(o.Host)))
}

// IDFile holds a backup directory's owner ID.
const IDFile = ".sqlite-backup-id"

func safeHost(h string) string {
	if h == "" {
		return "HOST"
	}
	return h
}

// Check is the preflight of a backup run with this remote, made before
// the snapshot so that a remote that cannot work costs seconds, not a
// backup: the listing proves the connection, host key, credentials and
// bucket or directory, and the place must hold no other owner's backups
// of this database file name. It does not retry: the caller decides
// what a transient failure means.
func Check(ctx context.Context, r Remote, url string, o Owner, loc *time.Location) error {
	if loc == nil {
		loc = time.Local
	}
	inv, err := inspect(ctx, r, o, loc, func(fn func() error) error { return fn() })
	if err != nil {
		return err
	}
	return inv.conflict(url, o)
}
