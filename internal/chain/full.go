package chain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/pageindex"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/sys/fsx"
)

// FullOptions describe the start of a new chain.
type FullOptions struct {
	// Path is the full backup as a plain SQLite file, checked: the
	// published file, or the checked temp file before it is compressed
	// or encrypted (the pages are the same).
	Path string
	// DB is the database file's base name; Index the page index to
	// write (pageindex.Path of the backup directory), replaced.
	DB    string
	Index string
}

// fullProof is what starting a chain proves.
const fullProof = "full backup; page index and state checksum computed from the published file"

// IndexFull starts a new chain on a full backup: it reads every page of
// the file, writes a new page index with a new seed, and returns the
// full's Chain record for its manifest, with the digest of that index.
// The index is published (replacing the previous chain's) only after
// every page was read; on error nothing is replaced.
func IndexFull(ctx context.Context, o FullOptions) (manifest.Chain, error) {
	f, err := os.Open(o.Path)
	if err != nil {
		return manifest.Chain{}, fmt.Errorf("index full backup %q: %w", o.Path, fsx.PathErr(err))
	}
	defer f.Close()
	h, err := sqlitefile.ReadHeader(f)
	if err != nil {
		return manifest.Chain{}, fmt.Errorf("index full backup %q: %w", o.Path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return manifest.Chain{}, fmt.Errorf("index full backup %q: %w", o.Path, fsx.PathErr(err))
	}
	ps := int64(h.PageSize)
	if fi.Size() == 0 || fi.Size()%ps != 0 || fi.Size()/ps > int64(^uint32(0)) {
		return manifest.Chain{}, fmt.Errorf("index full backup %q: %d bytes is no whole number of %d-byte pages", o.Path, fi.Size(), ps)
	}
	pages := fi.Size() / ps
	seed, err := pageindex.NewSeed()
	if err != nil {
		return manifest.Chain{}, err
	}
	hdr := pageindex.Header{PageSize: uint32(ps), Pages: uint32(pages), Seed: seed, Seq: 0}
	w, err := pageindex.Create(filepath.Dir(o.Index), o.DB, hdr)
	if err != nil {
		return manifest.Chain{}, err
	}
	published := false
	defer func() {
		if !published {
			w.Abort()
		}
	}()
	state := ltx.ChecksumFlag
	lock := hdr.LockPage()
	per := max(1<<20/ps, 1)
	buf := make([]byte, per*ps)
	for first := int64(1); first <= pages; first += per {
		if err := ctx.Err(); err != nil {
			return manifest.Chain{}, err
		}
		n := min(per, pages-first+1)
		b := buf[:n*ps]
		if _, err := f.ReadAt(b, (first-1)*ps); err != nil {
			return manifest.Chain{}, fmt.Errorf("index full backup %q: %w", o.Path, err)
		}
		for i := range n {
			p := uint32(first + i)
			if p == lock {
				if err := w.Add(pageindex.Entry{}); err != nil {
					return manifest.Chain{}, err
				}
				continue
			}
			page := b[i*ps : (i+1)*ps]
			e := pageindex.Entry{Hash: hdr.Hash(page), CRC: ltx.ChecksumPage(p, page)}
			state = ltx.ChecksumFlag | (state ^ e.CRC)
			if err := w.Add(e); err != nil {
				return manifest.Chain{}, err
			}
		}
	}
	digest, err := w.Finish(state)
	if err != nil {
		return manifest.Chain{}, err
	}
	if err := w.Publish(o.Index); err != nil {
		return manifest.Chain{}, err
	}
	published = true
	return manifest.Chain{
		Kind:        manifest.KindFull,
		PageSize:    int(ps),
		Pages:       pages,
		State:       state.String(),
		IndexSHA256: digest,
		Proof:       fullProof,
	}, nil
}
