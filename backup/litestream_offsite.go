package backup

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/chain"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/litestream"
	"sqlite-backup/remote"
)

// replicaRemoteDir is where a remote keeps level level of db's
// Litestream replica, below the remote's place, in the names
// Litestream's client for that scheme reads: its S3 client
// <prefix>/<db-file>.litestream/<level as 4 hex digits>/, its SFTP
// (and file) client <dir>/<db-file>.litestream/ltx/<level>/.
func replicaRemoteDir(scheme, db string, level int) string {
	return path.Join(db+chain.ReplicaSuffix, litestream.LevelDir(scheme == "s3", level))
}

// sendReplica makes remote rawURL's copy of db's Litestream replica
// (--layout litestream) hold what the local one holds: each file it
// lacks is uploaded (checked by size and SHA-256 as every upload is),
// snapshots first, then level 0 by TXID, so that a copy cut short never
// has a file before those it continues; then the files the local
// replica no longer has (their points pruned here) are removed. r is the
// remote opened at rawURL; each level is opened as a remote of its own.
// replaced are the files this run wrote anew under a name they had
// (chain.SyncReplica): a remote's copy by that name is replaced too.
// The caller holds the directory's off-site lock.
func sendReplica(ctx context.Context, opts Options, r remote.Remote, rawURL, dir, db string, replaced map[string]bool) (*remote.ReplicaSync, error) {
	rs := &remote.ReplicaSync{Uploaded: []string{}, Removed: []string{}}
	files, err := chain.ReplicaFiles(dir, db)
	if err != nil {
		return rs, err
	}
	u, err := remote.Parse(rawURL)
	if err != nil {
		return rs, err
	}
	byLevel := map[int][]string{}
	for _, f := range files {
		lv, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		byLevel[lv] = append(byLevel[lv], f)
	}
	for _, level := range []int{chain.SnapshotLevel, chain.IncrementLevel} {
		sub := replicaRemoteDir(u.Scheme, db, level)
		local := byLevel[level]
		if dm, ok := r.(remote.DirMaker); ok && len(local) > 0 {
			if err := dm.MkdirAll(ctx, sub); err != nil {
				return rs, err
			}
		}
		su := *u
		su.Path = "/" + path.Join(u.Path, sub)
		lr, err := remote.Open(ctx, su.String(), opts.Remotes.Options)
		if err != nil {
			return rs, err
		}
		err = sendLevel(ctx, lr, sub, dir, db, local, replaced, rs)
		lr.Close()
		if err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// sendLevel is sendReplica for one level: lr is the remote opened at it
// (sub below the remote's place), local its files in the local replica
// (relative to it, as replaced names them).
func sendLevel(ctx context.Context, lr remote.Remote, sub, dir, db string, local []string, replaced map[string]bool, rs *remote.ReplicaSync) error {
	objs, err := lr.List(ctx)
	if re := (*remote.Error)(nil); errors.As(err, &re) && re.Kind == remote.KindNoDir && len(local) == 0 {
		return nil // no such directory there, nothing to send
	}
	if err != nil {
		return err
	}
	// This run holds the off-site lock: an upload of ours that is not
	// done is a dead run's.
	if err := lr.Cleanup(ctx, func(string, time.Time) bool { return true }); err != nil {
		return err
	}
	there := map[string]int64{}
	for _, o := range objs {
		there[o.Name] = o.Size
	}
	want := map[string]bool{}
	rdir := chain.ReplicaDir(dir, db)
	for _, f := range local {
		name := filepath.Base(f)
		want[name] = true
		p := filepath.Join(rdir, f)
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if size, ok := there[name]; ok {
			if size == fi.Size() && !replaced[f] {
				continue
			}
			// Not what is here (an upload of another run's file by
			// that name): replaced.
			if err := lr.Delete(ctx, name); err != nil {
				return err
			}
		}
		if err := putFile(ctx, lr, name, p, fi.Size()); err != nil {
			return err
		}
		rs.Uploaded = append(rs.Uploaded, path.Join(sub, name))
	}
	for _, o := range objs {
		if want[o.Name] {
			continue
		}
		if _, _, err := ltx.ParseFilename(o.Name); err != nil {
			continue // not a replica file: not ours to remove
		}
		if err := lr.Delete(ctx, o.Name); err != nil {
			return err
		}
		rs.Removed = append(rs.Removed, path.Join(sub, o.Name))
	}
	return nil
}

// putFile uploads the local file p as name, checked by size and SHA-256.
func putFile(ctx context.Context, r remote.Remote, name, p string, size int64) error {
	sum, err := manifest.FileSHA256(p)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.Put(ctx, name, remote.Source{R: f, Size: size, SHA256: sum})
}

// replicaReplaced are the replica files the run removed and wrote again
// under the same name.
func replicaReplaced(rep *Report) map[string]bool {
	out := map[string]bool{}
	if rep.Replica == nil {
		return out
	}
	written := map[string]bool{}
	for _, f := range rep.Replica.Written {
		written[f] = true
	}
	for _, f := range rep.Replica.Removed {
		if written[f] {
			out[f] = true
		}
	}
	return out
}
