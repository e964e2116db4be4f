// Package metrics records the outcome of backups in a file for the
// Prometheus node_exporter textfile collector, so that an alert can fire
// when a database has had no good backup for too long.
//
// One file may serve several databases (one series per database label):
// each run rewrites the file with its own database's lines replaced and
// the others kept. The file is replaced atomically (temp file + rename in
// the same directory) under an flock on the directory, so the collector
// never reads half a file and two runs never lose each other's lines.
package metrics

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/internal/sys/fsx"
	"sqlite-backup/verify"
)

// The series written per database, in file order.
const (
	LastRunTimestamp     = "sqlite_backup_last_run_timestamp_seconds"
	LastRunSuccess       = "sqlite_backup_last_run_success"
	LastSuccessTimestamp = "sqlite_backup_last_success_timestamp_seconds"
	LastDuration         = "sqlite_backup_last_duration_seconds"
	LastSize             = "sqlite_backup_last_size_bytes"
	LastVerifyOK         = "sqlite_backup_last_verify_ok"
	// UnknownSourceFailure has no database label: a run for a source
	// that does not exist and never had a series (a typo'd --source)
	// sets it instead of creating a series that would stay in the file,
	// and keep an alert firing, after the typo is fixed.
	UnknownSourceFailure = "sqlite_backup_last_unknown_source_failure_timestamp_seconds"

	// DamagedBackups (per database, written by runs with remotes): local
	// backups found damaged when about to be sent.
	DamagedBackups = "sqlite_backup_damaged_backups"

	// Per database and remote (labels database, remote).
	RemoteLastRunSuccess       = "sqlite_backup_remote_last_run_success"
	RemoteLastSuccessTimestamp = "sqlite_backup_remote_last_success_timestamp_seconds"
	RemoteLastDuration         = "sqlite_backup_remote_last_duration_seconds"
	RemotePendingBackups       = "sqlite_backup_remote_pending_backups"
)

var help = map[string]string{
	LastRunTimestamp:     "Unix time the last backup run of this database ended, good or not.",
	LastRunSuccess:       "1 if the last backup run of this database succeeded, else 0.",
	LastSuccessTimestamp: "Unix time of the last successful backup of this database.",
	LastDuration:         "Duration of the last successful backup in seconds.",
	LastSize:             "Size in bytes of the last successful backup.",
	LastVerifyOK:         "1 if the last checked backup passed integrity_check/quick_check; 0 if it failed or was taken with --no-verify.",
	UnknownSourceFailure: "Unix time of the last run that failed for a database that does not exist and has no series here (e.g. a mistyped --source).",
	DamagedBackups:       "Local backups of this database the last run with remotes found damaged (bytes no longer matching their .sha256) and did not send.",

	RemoteLastRunSuccess:       "1 if the last run sent every backup of this database to this remote, checked, else 0.",
	RemoteLastSuccessTimestamp: "Unix time this remote last held every backup of this database, checked.",
	RemoteLastDuration:         "Duration in seconds of the last successful exchange with this remote.",
	RemotePendingBackups:       "Verified local backups of this database that this remote still lacked after the last run; they are kept here until it has them.",
}

var order = []string{LastRunTimestamp, LastRunSuccess, LastSuccessTimestamp, LastDuration, LastSize, LastVerifyOK, UnknownSourceFailure, DamagedBackups,
	RemoteLastRunSuccess, RemoteLastSuccessTimestamp, RemoteLastDuration, RemotePendingBackups}

// remoteSep joins database and remote in a series key; no path or URL
// holds a NUL.
const remoteSep = "\x00"

// RecordRemote writes the outcome of sending source's backups to one
// remote (its URL without secrets), and how many backups it still
// lacks. A failure keeps the last success's time, so an alert on its
// age fires. It does nothing on a nil File.
func (f *File) RecordRemote(source, remote string, ok bool, d time.Duration, pending int) error {
	if f == nil {
		return nil
	}
	if abs, err := filepath.Abs(source); err == nil {
		source = abs
	}
	set := map[string]float64{RemoteLastRunSuccess: 0, RemotePendingBackups: float64(pending)}
	if ok {
		set[RemoteLastRunSuccess] = 1
		set[RemoteLastSuccessTimestamp] = unixSeconds(f.now())
		set[RemoteLastDuration] = d.Seconds()
	}
	if err := f.update(source+remoteSep+remote, set, false); err != nil {
		return fmt.Errorf("write metrics %q: %w", f.Path, err)
	}
	return nil
}

// RecordDamaged writes how many local backups of source a run with
// remotes found damaged. It does nothing on a nil File.
func (f *File) RecordDamaged(source string, n int) error {
	if f == nil {
		return nil
	}
	if abs, err := filepath.Abs(source); err == nil {
		source = abs
	}
	if err := f.update(source, map[string]float64{DamagedBackups: float64(n)}, false); err != nil {
		return fmt.Errorf("write metrics %q: %w", f.Path, err)
	}
	return nil
}

// File is a metrics file that has been checked to be usable.
type File struct {
	Path string
	now  func() time.Time
}

// Open checks path before a backup runs, so a typo fails at once rather
// than after a long backup: the name must end in .prom (the collector
// reads nothing else) and the directory must exist. An empty path means
// no metrics file: a nil *File, whose RecordBackup does nothing.
func Open(path string) (*File, error) {
	if path == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("metrics file %q: %w", path, err)
	}
	if !strings.HasSuffix(abs, ".prom") {
		return nil, hint.Wrap(fmt.Errorf("metrics file %q: the node_exporter textfile collector only reads files ending in .prom", path),
			"--metrics-file /var/lib/node_exporter/textfile_collector/sqlite_backup.prom")
	}
	fi, err := os.Stat(filepath.Dir(abs))
	if err != nil {
		return nil, hint.Wrap(fmt.Errorf("metrics file %q: directory: %w", path, fsx.PathErr(err)),
			"point --metrics-file into node_exporter's --collector.textfile.directory")
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("metrics file %q: %s is not a directory", path, filepath.Dir(abs))
	}
	return &File{Path: abs, now: time.Now}, nil
}

// RecordBackup writes the outcome of one backup run of source: res is
// the backup that was published (nil if none was), runErr the error of
// the run, which can fail after publishing (pruning, say): then the
// backup counts as the last success but the run as failed. A run that
// published nothing keeps the last success's time, duration and size,
// so the age of the last good backup keeps growing until one succeeds.
// It does nothing on a nil File.
func (f *File) RecordBackup(source string, res *snapshot.Result, runErr error) error {
	if f == nil {
		return nil
	}
	if abs, err := filepath.Abs(source); err == nil {
		source = abs
	}
	now := f.now()
	set := map[string]float64{
		LastRunTimestamp: unixSeconds(now),
		LastRunSuccess:   0,
	}
	var vf *verify.FailedError
	switch {
	case res != nil:
		if runErr == nil {
			set[LastRunSuccess] = 1
		}
		set[LastSuccessTimestamp] = unixSeconds(now)
		set[LastDuration] = res.Duration.Seconds()
		set[LastSize] = float64(res.Size)
		set[LastVerifyOK] = 0
		if res.Verify == "ok" {
			set[LastVerifyOK] = 1
		}
	case errors.As(runErr, &vf):
		set[LastVerifyOK] = 0
	}
	unknown := false
	if res == nil && runErr != nil {
		_, err := os.Stat(source)
		unknown = errors.Is(err, fs.ErrNotExist)
	}
	if err := f.update(source, set, unknown); err != nil {
		if res != nil {
			return fmt.Errorf("write metrics %q (the backup itself was written): %w", f.Path, err)
		}
		return fmt.Errorf("write metrics %q: %w", f.Path, err)
	}
	return nil
}

// update replaces db's values named in set and keeps everything else.
// With unknown (the source does not exist), a db with no series yet gets
// none: UnknownSourceFailure is set instead.
func (f *File) update(db string, set map[string]float64, unknown bool) error {
	dir := filepath.Dir(f.Path)
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("lock %s: %w", dir, fsx.PathErr(err))
	}
	defer unlock()

	series := map[string]map[string]string{} // metric -> database -> value
	old, err := os.ReadFile(f.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fsx.PathErr(err)
	}
	for _, s := range parse(old) {
		if series[s.name] == nil {
			series[s.name] = map[string]string{}
		}
		series[s.name][s.db] = s.value
	}
	if _, known := series[LastRunTimestamp][db]; unknown && !known {
		set = map[string]float64{UnknownSourceFailure: set[LastRunTimestamp]}
		db = ""
	}
	for name, v := range set {
		if series[name] == nil {
			series[name] = map[string]string{}
		}
		series[name][db] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return writeAtomic(f.Path, format(series))
}

type sample struct{ name, db, value string }

// parse reads back the lines this package wrote. Anything else (a hand
// edit, another tool's line) is dropped, as the file is ours.
func parse(b []byte) []sample {
	var out []sample
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if name, value, ok := strings.Cut(line, " "); ok && name == UnknownSourceFailure {
			if _, err := strconv.ParseFloat(value, 64); err == nil {
				out = append(out, sample{name, "", value})
			}
			continue
		}
		name, rest, ok := strings.Cut(line, `{database="`)
		if !ok || help[name] == "" {
			continue
		}
		db, value, ok := unquoteLabel(rest)
		if !ok {
			continue
		}
		if r, isRemote := strings.CutPrefix(value, `,remote="`); isRemote {
			var rm string
			if rm, value, ok = unquoteLabel(r); !ok {
				continue
			}
			db += remoteSep + rm
		}
		value, ok = strings.CutPrefix(value, "} ")
		if _, err := strconv.ParseFloat(value, 64); !ok || err != nil {
			continue
		}
		out = append(out, sample{name, db, value})
	}
	return out
}

func format(series map[string]map[string]string) []byte {
	var b bytes.Buffer
	for _, name := range order {
		dbs := series[name]
		if len(dbs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help[name], name)
		keys := make([]string, 0, len(dbs))
		for db := range dbs {
			keys = append(keys, db)
		}
		sort.Strings(keys)
		for _, db := range keys {
			if db == "" { // the one series without a label
				fmt.Fprintf(&b, "%s %s\n", name, dbs[db])
				continue
			}
			if d, rm, isRemote := strings.Cut(db, remoteSep); isRemote {
				fmt.Fprintf(&b, "%s{database=\"%s\",remote=\"%s\"} %s\n", name, quoteLabel(d), quoteLabel(rm), dbs[db])
				continue
			}
			fmt.Fprintf(&b, "%s{database=\"%s\"} %s\n", name, quoteLabel(db), dbs[db])
		}
	}
	return b.Bytes()
}

// quoteLabel escapes a label value as the text exposition format wants.
func quoteLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// unquoteLabel reads an escaped label value up to its closing quote and
// returns the value and what follows the quote.
func unquoteLabel(s string) (val, rest string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// writeAtomic replaces path with data: a temp file in the same
// directory, whose name the collector ignores (it does not end in
// .prom), is written, synced, made world-readable (node_exporter runs as
// its own user) and renamed over path.
func writeAtomic(path string, data []byte) (err error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	t, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fsx.PathErr(err)
	}
	defer func() {
		if err != nil {
			t.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := t.Write(data); err != nil {
		return err
	}
	// O_CREATE's mode is cut by the umask; the collector must read it.
	if err := t.Chmod(0o644); err != nil {
		return err
	}
	if err := t.Sync(); err != nil {
		return err
	}
	if err := t.Close(); err != nil {
		return err
	}
	return fsx.PathErr(os.Rename(tmp, path))
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}
