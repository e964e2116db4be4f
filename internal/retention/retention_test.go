package retention

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := []struct {
		name, db, comp string
		seq            int
	}{
		{"app.db.20250101_020000", "app.db", "none", 1},
		{"app.db.20250101_020000-2", "app.db", "none", 2},
		{"app.db.20250101_020000-17.zst", "app.db", "zstd", 17},
		{"app.db.20250101_020000.gz", "app.db", "gzip", 1},
		{"my.app.db.20251231_235959", "my.app.db", "none", 1},
		{"app.db.20250101_020000.age", "app.db", "none", 1},
		{"app.db.20250101_020000-3.zst.age", "app.db", "zstd", 3},
		{"app.db.20250101_020000.gz.age", "app.db", "gzip", 1},
		{"app.db.20250101_020000.ltx", "app.db", "none", 1},
		{"app.db.20250101_020000-4.ltx.age", "app.db", "none", 4},
		{"x.ltx.20250101_020000.ltx", "x.ltx", "none", 1},
	}
	for _, g := range good {
		db, _, seq, comp, ok := Parse(g.name, time.UTC)
		if !ok || db != g.db || seq != g.seq || comp != g.comp {
			t.Errorf("Parse(%q) = %q %d %q %v, want %q %d %q", g.name, db, seq, comp, ok, g.db, g.seq, g.comp)
		}
		kind := KindFull
		if strings.Contains(strings.TrimPrefix(g.name, g.db), ".ltx") {
			kind = KindIncrement
		}
		if got := KindOf(g.name); got != kind {
			t.Errorf("KindOf(%q) = %q, want %q", g.name, got, kind)
		}
	}
	for _, name := range []string{
		"app.db",
		"app.db.bak",
		"app.db.20250101_020000.bak",
		"app.db.20250101_020000.sha256",
		"app.db.20250101_020000.json",
		"app.db.20250101_020000.zst.sha256",
		"app.db.20250101_020000.age.json",
		"app.db.20250101_020000.age.sha256",
		"app.db.20250101_020000.age.zst", // we encrypt last
		"app.db.20250101_020000.age.age",
		"app.db.20250101_020000-1", // we never write -1
		"app.db.20250101_020000-0",
		"app.db.20250101_020000-02",
		"app.db.2025010_020000",
		"app.db.20250101-020000",
		"app.db.20251301_020000", // month 13
		"app.db.20250230_020000", // 30 February
		"app.db.20250101_250000",
		".sqlite-backup-tmp-app.db-0011aabbccdd",
		".20250101_020000",
		"app.db.20250101_020000.ltx.zst", // LTX pages are compressed already
		"app.db.20250101_020000.zst.ltx",
		"app.db.20250101_020000.ltx.json",
		"app.db.20250101_020000.ltx.age.sha256",
		"app.db.20250101_020000.ltx.ltx",
		"app.db.pageindex",
	} {
		if db, _, _, _, ok := Parse(name, time.UTC); ok {
			t.Errorf("Parse(%q) accepted it as a backup of %q", name, db)
		}
	}
}

// TestFindEncrypted: .age backups are this tool's backups, sorted and
// pruned with the rest, and marked encrypted.
func TestFindEncrypted(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"app.db.20250101_020000", "app.db.20250102_020000.zst.age", "app.db.20250102_020000.zst.age.json", "app.db.20250103_020000-2.age"} {
		touch(t, filepath.Join(dir, n))
	}
	bs, err := Find(dir, "app.db", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bs {
		got = append(got, b.Name+":"+b.Compression+":"+b.Encryption)
	}
	want := []string{"app.db.20250103_020000-2.age:none:age", "app.db.20250102_020000.zst.age:zstd:age", "app.db.20250101_020000:none:"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Find = %v, want %v", got, want)
	}
	rm, err := Remove(bs[1])
	if err != nil || len(rm) != 2 {
		t.Errorf("Remove(%s) = %v, %v; want the backup and its .json", bs[1].Name, rm, err)
	}
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A year of daily backups at 02:00, pruned after each one as a cron job
// would, must end with exactly the backups the rules name, worked out by
// hand below, and must never touch files that are not ours.
func TestSimulatedYear(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	loc := time.UTC

	// Files that look like ours but are not, or not of this database.
	decoys := []string{
		"app.db.20250101_020000.bak",
		"app.db.2025-01-01",
		"app.db.20250230_020000",
		"other.db.20250101_020000",
		"xapp.db.20250105_020000",
		"notes.txt",
		".sqlite-backup.lock",
		"app.db.20250110_020000-1",
	}
	for _, d := range decoys {
		touch(t, filepath.Join(dir, d))
	}
	// A symlink under a backup name, pointing at a file that must survive.
	target := filepath.Join(outside, "precious.db")
	touch(t, target)
	if err := os.Symlink(target, filepath.Join(dir, "app.db.20250102_030000")); err != nil {
		t.Fatal(err)
	}
	// A directory under a backup name.
	if err := os.Mkdir(filepath.Join(dir, "app.db.20250103_030000"), 0o700); err != nil {
		t.Fatal(err)
	}
	decoys = append(decoys, "app.db.20250102_030000", "app.db.20250103_030000")

	p := Policy{Last: 3, Daily: 7, Weekly: 4, Monthly: 12}
	start := time.Date(2025, 1, 1, 2, 0, 0, 0, loc)
	for now := start; now.Year() == 2025; now = now.AddDate(0, 0, 1) {
		name := filepath.Join(dir, "app.db."+now.Format(TimeFormat))
		touch(t, name)
		touch(t, name+".sha256")
		touch(t, name+".json")
		bs, err := Find(dir, "app.db", loc)
		if err != nil {
			t.Fatal(err)
		}
		if bs[0].Path != name {
			t.Fatalf("%s: newest found is %s", now, bs[0].Path)
		}
		for _, d := range Plan(bs, p, nil) {
			if d.Keep {
				continue
			}
			if _, err := Remove(d.Backup); err != nil {
				t.Fatal(err)
			}
		}
	}

	// 31 Dec 2025 is a Wednesday. Daily 7: 25..31 Dec. Last 3 is inside
	// that. Weekly 4: ISO weeks 2026-W01 (31 Dec), 2025-W52 (Sun 28 Dec),
	// W51 (Sun 21 Dec), W50 (Sun 14 Dec). Monthly 12: the last day of
	// each month of 2025 (December's is 31 Dec).
	days := []string{
		"20250131", "20250228", "20250331", "20250430", "20250531", "20250630",
		"20250731", "20250831", "20250930", "20251031", "20251130",
		"20251214", "20251221",
		"20251225", "20251226", "20251227", "20251228", "20251229", "20251230", "20251231",
	}
	var want []string
	for _, d := range days {
		b := "app.db." + d + "_020000"
		want = append(want, b, b+".json", b+".sha256")
	}
	want = append(want, decoys...)
	slices.Sort(want)
	got := names(t, dir)
	if !slices.Equal(got, want) {
		t.Errorf("after a year:\n got %q\nwant %q", got, want)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("symlink target: %v", err)
	}
}

func TestPlanRules(t *testing.T) {
	loc := time.UTC
	var bs []Backup
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, loc)
	for i := range 10 {
		bs = append(bs, Backup{Path: string(rune('a' + i)), Time: t0.Add(time.Duration(i) * time.Hour), Seq: 1})
	}
	kept := func(ds []Decision) (out []string) {
		for _, d := range ds {
			if d.Keep {
				out = append(out, d.Path)
			}
		}
		return out
	}
	cases := []struct {
		p       Policy
		protect map[string]string
		want    []string
	}{
		{Policy{}, nil, []string{"j", "i", "h", "g", "f", "e", "d", "c", "b", "a"}},
		{Policy{Last: 2}, nil, []string{"j", "i"}},
		{Policy{Last: 1}, map[string]string{"c": "test"}, []string{"j", "c"}},
		// All in one day: daily keeps only the newest, which is always kept.
		{Policy{Daily: 5}, nil, []string{"j"}},
		{Policy{Last: 20}, nil, []string{"j", "i", "h", "g", "f", "e", "d", "c", "b", "a"}},
	}
	for _, c := range cases {
		got := kept(Plan(bs, c.p, c.protect))
		if !slices.Equal(got, c.want) {
			t.Errorf("%v protect %v: kept %q, want %q", c.p, c.protect, got, c.want)
		}
	}
	// Same second: -N orders after the plain name.
	same := []Backup{
		{Path: "x", Time: t0, Seq: 1},
		{Path: "x-3", Time: t0, Seq: 3},
		{Path: "x-2", Time: t0, Seq: 2},
	}
	if got := kept(Plan(same, Policy{Last: 1}, nil)); !slices.Equal(got, []string{"x-3"}) {
		t.Errorf("same second: kept %q, want x-3", got)
	}
}

// Remove never follows a symlink planted after the listing.
func TestRemoveSkipsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "keep")
	touch(t, target)
	p := filepath.Join(dir, "app.db.20250101_020000")
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p+".json"); err != nil {
		t.Fatal(err)
	}
	rm, err := Remove(Backup{Path: p})
	if err != nil || len(rm) != 0 {
		t.Fatalf("Remove = %v, %v; want nothing removed", rm, err)
	}
	if _, err := os.Lstat(p); err != nil {
		t.Error("symlink was removed")
	}
	if _, err := os.Stat(target); err != nil {
		t.Error("target was removed")
	}
}
