package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/content"
	"sqlite-backup/internal/format/encrypt"
	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/remote"
)

// SidecarOf reports whether path is a sidecar this tool writes beside a
// backup (<backup>.sha256, <backup>.json), and names the backup and the
// kind. Such a file is checked with its backup (the hash always, the
// manifest with Deep), not as a database: given a backup directory's
// glob, verify would otherwise fail each one as "not a SQLite database".
// A file of those names that holds a SQLite header is a database.
func SidecarOf(path string) (backup, kind string, ok bool) {
	for _, s := range []string{".sha256", ".json"} {
		b, found := strings.CutSuffix(path, s)
		if !found || b == "" || strings.HasSuffix(b, "/") {
			continue
		}
		if fi, err := os.Stat(b); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if f, err := os.Open(path); err == nil {
			head := make([]byte, len(sqlitefile.Magic))
			n, _ := io.ReadFull(f, head)
			f.Close()
			if string(head[:n]) == sqlitefile.Magic {
				continue
			}
		}
		return b, s[1:], true
	}
	return "", "", false
}

// File checks one file. The returned error is for operational trouble
// (the file cannot be stat'ed or read); a file that can be read but is
// not a sound database yields a Result with OK false and a nil error.
//
// In order: the <file>.sha256 sidecar if there is one (catches bit rot,
// compressed files included); a compressed file is then decompressed to
// a temp file in opts.TempDir and the rest runs on that; the header and
// integrity checks; with opts.Deep the row counts and content hash from
// the manifest <file>.json.
//
// A path that is a remote URL/NAME (remote.IsURL) is downloaded with its
// sidecars first (remote.FetchURL) and the copy is checked; the Result
// names the URL without secrets.
func File(ctx context.Context, path string, opts Options) (Result, error) {
	// Every run that may leave a decrypted copy or a download in the
	// temp dir removes what killed ones left there, whatever it checks.
	sweep(opts.TempDir)
	if remote.IsURL(path) {
		return fetched(ctx, path, opts)
	}
	res := Result{Path: path, Check: "integrity_check"}
	if opts.Quick {
		res.Check = "quick_check"
	}
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("verify %q: %w", path, fsx.PathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return checkFile(ctx, path, fi, opts)
	}
	res.Size = fi.Size()
	want, err := manifest.ReadSHA256(path)
	switch {
	case errors.Is(err, manifest.ErrNoSHA256):
		return checkFile(ctx, path, fi, opts)
	case err != nil:
		return res, fmt.Errorf("verify %q: %w", path, err)
	case opts.Fetched:
		r, err := checkFile(ctx, path, fi, opts)
		r.SHA256, r.Sum = "ok", want
		return r, err
	}

	// The hash and SQLite's check both read the whole file and are both
	// CPU bound: run them side by side. A mismatch is the verdict, and
	// stops the check.
	type hashed struct {
		sum string
		err error
	}
	hc := make(chan hashed, 1)
	go func() {
		sum, err := manifest.FileSHA256(path)
		hc <- hashed{sum, err}
	}()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type checked struct {
		r   Result
		err error
	}
	cc := make(chan checked, 1)
	go func() {
		r, err := checkFile(cctx, path, fi, opts)
		cc <- checked{r, err}
	}()
	h := <-hc
	if h.err != nil || h.sum != want {
		cancel()
	}
	c := <-cc
	if h.err != nil || h.sum != want {
		c.r.RemoveDecompressed()
		if h.err != nil {
			return res, fmt.Errorf("verify %q: %w", path, h.err)
		}
		res.SHA256 = "mismatch"
		res.Problems = append(res.Problems, fmt.Sprintf("sha256 mismatch: file has %s, %s.sha256 says %s (the file changed since it was written)", h.sum, path, want))
		return res, nil
	}
	c.r.SHA256, c.r.Sum = "ok", want
	return c.r, c.err
}

// checkFile is File after the sidecar hash: decompression, the header
// and integrity checks, and --deep.
func checkFile(ctx context.Context, path string, fi os.FileInfo, opts Options) (Result, error) {
	res := Result{Path: path, Check: "integrity_check", Size: fi.Size()}
	if opts.Quick {
		res.Check = "quick_check"
	}
	var deep func(*sql.DB) ([]string, error)
	if opts.Deep {
		path := path
		if opts.DeepOf != "" {
			path = opts.DeepOf
		}
		m, err := manifest.Read(path)
		if errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("verify --deep %q: no manifest %s: the content was not recorded when the backup was made", path, path+manifest.JSONSuffix)
		}
		if err != nil {
			return res, fmt.Errorf("verify --deep %q: %w", path, err)
		}
		if m.Sealed != "" {
			if len(opts.Identities) == 0 {
				return res, hint.Wrap(fmt.Errorf("verify --deep %q: the manifest's content record is encrypted", path),
					"give the key: sqlite-backup verify --deep -i key.txt %s", hint.Quote(path))
			}
			if err := m.Open(path+manifest.JSONSuffix, opts.Identities); err != nil {
				return res, fmt.Errorf("verify --deep %q: %w", path, err)
			}
		}
		if m.Content == nil {
			return res, fmt.Errorf("verify --deep %q: manifest has no content record", path)
		}
		deep = func(db *sql.DB) ([]string, error) {
			problems, err := compareContent(ctx, db, m.Content)
			if err != nil {
				return nil, hint.Wrap(fmt.Errorf("verify --deep %q: %w", path, err),
					"check it without --deep: sqlite-backup verify %s", hint.Quote(path))
			}
			return problems, nil
		}
	}

	dbPath := path
	kind := compress.None
	encrypted := fi.Mode().IsRegular() && encrypt.IsAge(path)
	if fi.Mode().IsRegular() && !encrypted {
		kind = compress.KindOf(path)
	}
	var note string
	if fi.Mode().IsRegular() && !encrypted && strings.HasSuffix(path, encrypt.Suffix) {
		// The name promises what the bytes do not: say so, whatever the
		// verdict (a plain copy under an encrypted name, by mistake or
		// not, is readable by anyone who can read the file).
		note = "NOT ENCRYPTED: named " + encrypt.Suffix + " but not an age file"
	}
	if encrypted {
		res.Encryption = "age"
		if len(opts.Identities) == 0 {
			// What can be checked without a key: the header.
			if err := encrypt.CheckHeader(path); err != nil {
				var ce *encrypt.CorruptError
				if errors.As(err, &ce) {
					res.Problems = append(res.Problems, ce.Error())
					return res, nil
				}
				return res, fmt.Errorf("verify %q: %w", path, err)
			}
			res.Check = "none"
			res.ContentChecked = new(false)
			res.NotChecked = "encrypted, give --identity"
			return res, nil
		}
		held, err := checkDir(opts.TempDir)
		if err != nil {
			return res, fmt.Errorf("verify %q: %w", path, err)
		}
		tmp, inner, err := encrypt.DecryptTo(ctx, path, held.Path, opts.Identities)
		if err != nil {
			held.Release()
			var ce *encrypt.CorruptError
			var we *encrypt.WrongIdentityError
			switch {
			case errors.As(err, &ce):
				res.Problems = append(res.Problems, ce.Error())
				return res, nil
			case errors.As(err, &we):
				return res, hint.Wrap(fmt.Errorf("verify %q: %w", path, err), "give the private key of one of its recipients: -i key.txt (age identity) or -i ~/.ssh/id_ed25519")
			}
			return res, fullHint(fmt.Errorf("verify %q: %w", path, err), opts.TempDir)
		}
		dbPath, kind, res.held = tmp, inner, held
	} else if kind != compress.None {
		held, err := checkDir(opts.TempDir)
		if err != nil {
			return res, fmt.Errorf("verify %q: %w", path, err)
		}
		tmp, err := compress.DecompressTo(ctx, path, held.Path)
		if err != nil {
			held.Release()
			var ce *compress.CorruptError
			if errors.As(err, &ce) {
				res.Compression = string(kind)
				res.Problems = append(res.Problems, ce.Error())
				return res, nil
			}
			return res, fullHint(fmt.Errorf("verify %q: %w", path, err), opts.TempDir)
		}
		dbPath, res.held = tmp, held
	}
	r, err := checkDB(ctx, dbPath, opts, deep)
	if dbPath != path {
		if opts.KeepDecompressed && err == nil && r.OK {
			r.Decompressed, r.held = dbPath, res.held
		} else {
			// The plaintext lives no longer than the check.
			res.held.Release()
		}
	}
	r.Path = path
	if kind != compress.None {
		r.Compression = string(kind)
	}
	if dbPath != path {
		r.Uncompressed = r.Size
		r.Size = res.Size
	}
	r.Encryption = res.Encryption
	r.Note = note
	if encrypted {
		r.ContentChecked = new(true)
	}
	if opts.Deep && r.OK {
		r.Content = "ok"
	}
	return r, err
}

// compareContent recomputes what the manifest recorded: the full hash
// when it has one, else the row counts.
func compareContent(ctx context.Context, db *sql.DB, want *manifest.Content) ([]string, error) {
	var got *content.Result
	var err error
	if want.SHA256 != "" {
		if want.Algorithm != content.Algorithm {
			return nil, fmt.Errorf("manifest content hash uses %q; this version computes %q", want.Algorithm, content.Algorithm)
		}
		got, err = content.Hash(ctx, db)
	} else {
		got, err = content.Count(ctx, db)
	}
	if err != nil {
		return nil, err
	}
	var problems []string
	have := map[string]content.Table{}
	for _, t := range got.Tables {
		have[t.Name] = t
	}
	for _, w := range want.Tables {
		g, ok := have[w.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("content: table %s is missing", w.Name))
		case g.Rows != w.Rows:
			problems = append(problems, fmt.Sprintf("content: table %s has %d rows, the manifest says %d", w.Name, g.Rows, w.Rows))
		case w.SHA256 != "" && g.SHA256 != w.SHA256:
			problems = append(problems, fmt.Sprintf("content: table %s differs from the snapshot (hash %.12s…, manifest %.12s…)", w.Name, g.SHA256, w.SHA256))
		}
		delete(have, w.Name)
	}
	for name := range have {
		problems = append(problems, fmt.Sprintf("content: table %s is not in the manifest", name))
	}
	if len(problems) == 0 && want.SHA256 != "" && got.SHA256 != want.SHA256 {
		problems = append(problems, fmt.Sprintf("content: schema or content hash %.12s… differs from the manifest's %.12s…", got.SHA256, want.SHA256))
	}
	return problems, nil
}

// fetched is File of a remote backup: the download is checked against
// its .sha256 on the way in, then the local copy is checked as any file.
func fetched(ctx context.Context, url string, opts Options) (Result, error) {
	shown := remote.Redact(url)
	res := Result{Path: shown, Check: "integrity_check"}
	if opts.Quick {
		res.Check = "quick_check"
	}
	local, release, err := remote.FetchURL(ctx, url, opts.Remote, opts.TempDir, opts.FetchProgress)
	var de *remote.DamagedError
	if errors.As(err, &de) {
		// The same verdict as a local file that no longer matches its
		// sidecar: FAILED, wherever the file lives.
		res.SHA256 = "mismatch"
		res.Problems = append(res.Problems, "sha256 mismatch: "+de.Error())
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer release()
	opts.FetchProgress = nil
	opts.Fetched = true // checked against its .sha256 on the way in
	res, err = File(ctx, local, opts)
	res.Path = shown
	return res, err
}

// checkDir is a new private directory in dir (os.TempDir() when "") for
// a decrypted or decompressed copy, held by this run (fsx.HeldDir); what
// killed runs left in dir is removed first.
func checkDir(dir string) (*fsx.HeldDir, error) {
	sweep(dir)
	h, err := fsx.MkdirHeld(dir, fsx.CheckDirPrefix)
	if err != nil {
		if dir == "" {
			dir = os.TempDir()
		}
		return nil, fmt.Errorf("private dir in %q: %w", dir, fsx.PathErr(err))
	}
	return h, nil
}

var swept sync.Map // dirs swept by this process

// sweep removes, once a process, the private directories that killed
// runs left in dir (a decrypted copy, a download): every run that may
// leave one there cleans up after the dead ones.
func sweep(dir string) {
	if dir == "" {
		dir = os.TempDir()
	}
	if _, done := swept.LoadOrStore(dir, true); !done {
		fsx.RemoveDead(dir)
	}
}

// fullHint gives a full disk under the decrypted or decompressed copy
// the way out: free space in the temp dir, or another one.
func fullHint(err error, dir string) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return hint.Wrap(err, "%s", compress.FullHint(dir))
	}
	return err
}

// RemoveDecompressed removes the copy KeepDecompressed kept, with its
// private directory.
func (r Result) RemoveDecompressed() {
	r.held.Release()
}
