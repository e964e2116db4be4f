package sqlitefile

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// TestURIOddNames: a file: URI must name exactly the file, whatever its
// name holds, and mode=ro must never create it.
func TestURIOddNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"plain.db", "with space.db", "q?mark.db", "hash#.db", "pct%41.db", "amp&x=y.db", "ünïcødé.db", `quo"te'.db`} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			ro, err := URI(p, url.Values{"mode": {"ro"}})
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", ro)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Ping(); err == nil {
				t.Errorf("mode=ro opened a missing file %q", ro)
			}
			db.Close()
			if _, err := os.Stat(p); err == nil {
				t.Fatalf("mode=ro created %q", p)
			}

			rw, err := URI(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			db, err = sql.Open("sqlite", rw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			entries, _ := os.ReadDir(dir)
			found := false
			for _, e := range entries {
				found = found || e.Name() == name
			}
			if !found {
				t.Fatalf("URI %q did not create %q; dir holds %v", rw, name, entries)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	b := make([]byte, HeaderSize)
	copy(b, Magic)
	b[16], b[17] = 0, 1 // 1 means 65536
	b[18], b[19] = 2, 2
	b[24+3], b[92+3] = 5, 5 // change counter == version-valid-for
	b[28+3] = 9
	h, err := ParseHeader(b)
	if err != nil || h.PageSize != 65536 || !h.WAL || !h.PagesValid || h.Pages != 9 {
		t.Fatalf("%+v %v", h, err)
	}
	b[92+3] = 6
	if h, _ := ParseHeader(b); h.PagesValid {
		t.Error("page count trusted although version-valid-for differs")
	}
	b[16], b[17] = 0x01, 0x01
	if _, err := ParseHeader(b); err == nil {
		t.Error("page size 257 accepted")
	}
	if _, err := ParseHeader(b[:99]); err != ErrNotSQLite {
		t.Error("short header accepted")
	}
}

func TestCheckSize(t *testing.T) {
	h := Header{PageSize: 4096, Pages: 10, PagesValid: true}
	for _, tt := range []struct {
		size int64
		want string
	}{
		{40960, ""},
		{81920, ""}, // longer than the header says: SQLite uses the header
		{40000, "truncated: size 40000 is not a multiple of the page size 4096"},
		{36864, "truncated: header says 10 pages, file holds 9"},
	} {
		err := CheckSize(h, tt.size)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("CheckSize(%d) = %v, want %q", tt.size, err, tt.want)
		}
	}
	h.PagesValid = false
	if err := CheckSize(h, 36864); err != nil {
		t.Errorf("untrusted page count used: %v", err)
	}
}
