package metrics

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/snapshot"
	"sqlite-backup/verify"
)

func openAt(t *testing.T, path string, now time.Time) *File {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.now = func() time.Time { return now }
	return f
}

// value reads one sample back from the file as text.
func value(t *testing.T, path, name, db string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	prefix := name + `{database="` + quoteLabel(db) + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return "<absent>"
}

// A line of the text exposition format as this package writes it.
var lineRE = regexp.MustCompile(`^(# (HELP|TYPE) sqlite_backup_[a-z_]+ .+|sqlite_backup_[a-z_]+\{database="([^"\\\n]|\\["\\n])*"(,remote="([^"\\\n]|\\["\\n])*")?\} -?[0-9.e+]+|sqlite_backup_[a-z_]+ -?[0-9.e+]+)$`)

func checkFormat(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end in a newline", path)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !lineRE.MatchString(line) {
			t.Errorf("bad line in %s: %q", path, line)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("%s has mode %v; node_exporter needs to read it", path, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestRecordSuccessThenFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sqlite_backup.prom")
	t0 := time.Unix(1764201600, 0)
	res := &snapshot.Result{Size: 28672, Duration: 1500 * time.Millisecond, Verify: "ok"}
	if err := openAt(t, path, t0).RecordBackup("/srv/app.db", res, nil); err != nil {
		t.Fatal(err)
	}
	checkFormat(t, path)
	wantValues(t, path, "/srv/app.db", "", map[string]string{
		LastRunTimestamp: "1764201600", LastRunSuccess: "1", LastSuccessTimestamp: "1764201600",
		LastDuration: "1.5", LastSize: "28672", LastVerifyOK: "1",
	})

	// A failed run an hour later: the last success stays where it was.
	t1 := t0.Add(time.Hour)
	runErr := errors.New(`open source "/srv/app.db": no such file`)
	if err := openAt(t, path, t1).RecordBackup("/srv/app.db", nil, runErr); err != nil {
		t.Fatal(err)
	}
	checkFormat(t, path)
	wantValues(t, path, "/srv/app.db", "after a failure: ", map[string]string{
		LastRunTimestamp: "1764205200", LastRunSuccess: "0", LastSuccessTimestamp: "1764201600",
		LastDuration: "1.5", LastSize: "28672", LastVerifyOK: "1",
	})

	// A backup that failed verification flips the verify series.
	vf := hint.Wrap(fmt.Errorf("backup failed: %w", &verify.FailedError{}), "x")
	if err := openAt(t, path, t1).RecordBackup("/srv/app.db", nil, vf); err != nil {
		t.Fatal(err)
	}
	if got := value(t, path, LastVerifyOK, "/srv/app.db"); got != "0" {
		t.Errorf("after a verify failure: %s = %s, want 0", LastVerifyOK, got)
	}
	// A run that published its backup and then failed (pruning, say):
	// the backup is the last success, the run still failed.
	t2 := t1.Add(time.Hour)
	late := &snapshot.Result{Size: 4096, Duration: time.Second, Verify: "ok"}
	if err := openAt(t, path, t2).RecordBackup("/srv/app.db", late, errors.New("prune: permission denied")); err != nil {
		t.Fatal(err)
	}
	wantValues(t, path, "/srv/app.db", "after a late failure: ", map[string]string{
		LastRunSuccess: "0", LastSuccessTimestamp: "1764208800", LastSize: "4096", LastVerifyOK: "1",
	})
	// So does a backup taken with --no-verify: it is not known good.
	skipped := &snapshot.Result{Size: 1, Verify: "skipped"}
	if err := openAt(t, path, t1).RecordBackup("/srv/app.db", skipped, nil); err != nil {
		t.Fatal(err)
	}
	if got := value(t, path, LastVerifyOK, "/srv/app.db"); got != "0" {
		t.Errorf("after --no-verify: %s = %s, want 0", LastVerifyOK, got)
	}
}

func TestFirstRunFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.prom")
	db := filepath.Join(dir, "a.db") // exists: a real database that fails
	if err := os.WriteFile(db, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := openAt(t, path, time.Unix(100, 0)).RecordBackup(db, nil, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	checkFormat(t, path)
	if got := value(t, path, LastRunSuccess, db); got != "0" {
		t.Errorf("%s = %s, want 0", LastRunSuccess, got)
	}
	// No success ever: no success timestamp, so absent() alerts can see it.
	if got := value(t, path, LastSuccessTimestamp, db); got != "<absent>" {
		t.Errorf("%s = %s, want absent", LastSuccessTimestamp, got)
	}
}

// A source that does not exist and never had a series (a typo) gets no
// series of its own, which would outlive the typo and keep an alert
// firing; the unlabelled UnknownSourceFailure records the run instead.
// A database that had a series and then vanished keeps failing in it.
func TestMissingSourceMakesNoSeries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.prom")
	typo := filepath.Join(dir, "nonexist.db")
	if err := openAt(t, path, time.Unix(100, 0)).RecordBackup(typo, nil, errors.New("no such file")); err != nil {
		t.Fatal(err)
	}
	checkFormat(t, path)
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "nonexist.db") {
		t.Errorf("a series for the missing source:\n%s", b)
	}
	if !strings.Contains(string(b), "\n"+UnknownSourceFailure+" 100\n") {
		t.Errorf("no %s 100:\n%s", UnknownSourceFailure, b)
	}

	real := filepath.Join(dir, "app.db")
	if err := openAt(t, path, time.Unix(200, 0)).RecordBackup(real, &snapshot.Result{Size: 1, Verify: "ok"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := openAt(t, path, time.Unix(300, 0)).RecordBackup(real, nil, errors.New("no such file")); err != nil {
		t.Fatal(err)
	}
	checkFormat(t, path)
	if got := value(t, path, LastRunSuccess, real); got != "0" {
		t.Errorf("vanished database: %s = %s, want 0", LastRunSuccess, got)
	}
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), "\n"+UnknownSourceFailure+" 100\n") {
		t.Errorf("%s not kept as it was:\n%s", UnknownSourceFailure, b)
	}
}

// Several databases share one file; runs in parallel must not lose each
// other's lines, and odd paths must round-trip through label escaping.
func TestManyDatabasesConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.prom")
	dbs := []string{"/srv/a.db", `/srv/we"ird\path.db`, "/srv/new\nline.db", "/srv/ünï cödé.db"}
	for i := range 12 {
		dbs = append(dbs, fmt.Sprintf("/srv/app%d.db", i))
	}
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &snapshot.Result{Size: int64(1000 + i), Verify: "ok"}
			if err := openAt(t, path, time.Unix(int64(i), 0)).RecordBackup(db, res, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	checkFormat(t, path)
	for i, db := range dbs {
		if got, want := value(t, path, LastSize, db), fmt.Sprint(1000+i); got != want {
			t.Errorf("%q: %s = %s, want %s", db, LastSize, got, want)
		}
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), LastSize+"{"); n != len(dbs) {
		t.Errorf("%d %s lines for %d databases", n, LastSize, len(dbs))
	}
}

func TestOpenChecksPath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "m.txt"), "only reads files ending in .prom"},
		{filepath.Join(dir, "nodir", "m.prom"), "no such file or directory"},
	} {
		_, err := Open(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Open(%q) = %v, want an error naming the file and %q", tc.path, err, tc.want)
		}
		if hint.Of(err) == "" {
			t.Errorf("Open(%q): no hint", tc.path)
		}
	}
	// A write that cannot happen is reported, naming the file, and says
	// whether the backup itself was written.
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o755)
	f := openAt(t, filepath.Join(ro, "m.prom"), time.Unix(1, 0))
	os.Remove(ro)
	err := f.RecordBackup("/a.db", &snapshot.Result{Verify: "ok"}, nil)
	if err == nil || !strings.Contains(err.Error(), "the backup itself was written") {
		t.Errorf("write into a removed directory: %v", err)
	}
}

func TestNilFile(t *testing.T) {
	var f *File
	if err := f.RecordBackup("/a.db", nil, errors.New("x")); err != nil {
		t.Fatal(err)
	}
}

// wantValues checks metrics of one database in the textfile at path;
// when names the state in a failure message ("after a failure: ").
func wantValues(t *testing.T, path, db, when string, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if got := value(t, path, name, db); got != w {
			t.Errorf("%s%s = %s, want %s", when, name, got, w)
		}
	}
}

// TestRecordRemote: each remote of a database is its own series, kept
// across runs that rewrite the file; a failure keeps the last success's
// time so an alert on its age fires.
func TestRecordRemote(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.prom")
	// The database exists: a failed run of one that does not would get
	// no series of its own (UnknownSourceFailure).
	db := filepath.Join(dir, "app.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	f := openAt(t, p, t0)
	for _, r := range []string{"sftp://b@h/srv/x", `s3://bucket/a"b`} {
		if err := f.RecordRemote(db, r, true, 2*time.Second, 0); err != nil {
			t.Fatal(err)
		}
	}
	f = openAt(t, p, t0.Add(time.Hour))
	if err := f.RecordRemote(db, "sftp://b@h/srv/x", false, 0, 3); err != nil {
		t.Fatal(err)
	}
	if err := f.RecordDamaged(db, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.RecordBackup(db, nil, errors.New("x")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	for _, want := range []string{
		`sqlite_backup_remote_last_run_success{database="` + db + `",remote="sftp://b@h/srv/x"} 0`,
		`sqlite_backup_remote_last_success_timestamp_seconds{database="` + db + `",remote="sftp://b@h/srv/x"} 1700000000`,
		`sqlite_backup_remote_last_run_success{database="` + db + `",remote="s3://bucket/a\"b"} 1`,
		`sqlite_backup_remote_last_duration_seconds{database="` + db + `",remote="s3://bucket/a\"b"} 2`,
		`sqlite_backup_remote_pending_backups{database="` + db + `",remote="sftp://b@h/srv/x"} 3`,
		`sqlite_backup_remote_pending_backups{database="` + db + `",remote="s3://bucket/a\"b"} 0`,
		`sqlite_backup_damaged_backups{database="` + db + `"} 1`,
		`sqlite_backup_last_run_success{database="` + db + `"} 0`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("missing %s in\n%s", want, b)
		}
	}
	checkFormat(t, p)
}
