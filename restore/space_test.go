package restore

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The space check is only as good as its estimate: an online restore
// into a live WAL database (another process, the C sqlite3, holds it
// open, so the -wal keeps its high-water size) with a larger backup must
// write no more than the plan said for each part: the safety copy, the
// -wal, the growth of the file.
func TestSpacePlanBoundsOnlineRestore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	bk := filepath.Join(t.TempDir(), "app.bak")
	cli(t, bk, "create table t(id integer primary key, v blob); insert into t(v) select randomblob(700) from generate_series(1,3000);")
	cli(t, db, "pragma journal_mode=wal; create table t(id integer primary key, v blob); insert into t(v) select randomblob(700) from generate_series(1,500);")
	// Committed frames still in the -wal: the safety copy includes them.
	cli(t, db, ".dbconfig no_ckpt_on_close on", "pragma wal_autocheckpoint=0", "insert into t(v) select randomblob(700) from generate_series(1,300);")

	app := exec.Command("sqlite3", "-batch", db)
	in, _ := app.StdinPipe()
	pipe, _ := app.StdoutPipe()
	out := bufio.NewReader(pipe)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); app.Wait() }()
	io.WriteString(in, "select count(*) > 0 from t;\n")
	if _, err := out.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	tgt, err := inspectTarget(db)
	if err != nil {
		t.Fatal(err)
	}
	plan := spacePlan(db, tgt, ModeOnline, sizeOf(bk), 0, 0, false)
	part := map[string]int64{}
	for _, p := range plan.Parts {
		part[p.What] = p.Bytes
	}
	oldSize, oldWAL := tgt.fi.Size(), sizeOf(db+"-wal")
	res, err := Run(context.Background(), Options{Backup: bk, Target: db, Force: true, BusyTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != ModeOnline || res.Space == nil || res.Space.Needed != plan.Needed {
		t.Fatalf("mode %s, space %+v, want online and the plan %+v", res.Mode, res.Space, plan)
	}
	walGrowth := sizeOf(db+"-wal") - oldWAL
	// The application's next checkpoint moves the new pages into the
	// file, which grows to the backup's size.
	io.WriteString(in, "pragma wal_checkpoint;\n")
	if line, err := out.ReadString('\n'); err != nil || line[0] != '0' {
		t.Fatalf("checkpoint: %q %v", line, err)
	}
	for _, c := range []struct {
		what string
		got  int64
	}{
		{"safety copy", res.SafetySize},
		{"-wal of the copy into the live database", walGrowth},
		{"growth of the database file", sizeOf(db) - oldSize},
	} {
		if c.got <= 0 || c.got > part[c.what] {
			t.Errorf("%s: %d bytes written, planned %d", c.what, c.got, part[c.what])
		}
	}
}
