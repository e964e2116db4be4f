package restore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/format/manifest"
	"sqlite-backup/internal/output/hint"
)

// TestSetKeepingContent: a checked file that is renamed into place gets
// its journal mode with nothing else changed, and any other change
// fails it.
func TestSetKeepingContent(t *testing.T) {
	ctx := context.Background()
	mk := func(t *testing.T, wal bool) string {
		p := filepath.Join(t.TempDir(), "checked.db")
		mode := "delete"
		if wal {
			mode = "wal"
		}
		cli(t, p, "pragma journal_mode="+mode+"; create table t(id integer primary key, v blob, check(length(v) > 0)); create index tv on t(v); insert into t(v) select randomblob(300) from generate_series(1,2000); delete from t where id % 7 = 0;")
		return p
	}
	for _, tc := range []struct {
		name      string
		wal       bool
		to        string
		corrupt   bool // the journal-mode write also changes a page
		wantErr   string
		untouched bool
	}{
		{name: "wal to delete", wal: true, to: "delete"},
		{name: "delete to wal", to: "wal"},
		{name: "already delete", to: "delete", untouched: true},
		{name: "already wal", wal: true, to: "wal", untouched: true},
		{name: "a page changed too", wal: true, to: "delete", corrupt: true, wantErr: "changed more than its header fields"},
		{name: "in-header size changed too", to: "wal", corrupt: true, wantErr: "changed more than its header fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mk(t, tc.wal)
			before, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.corrupt {
				at := int64(2*4096 + 700) // a byte in page 3
				if strings.HasPrefix(tc.name, "in-header") {
					at = 31 // the low byte of the database size in pages
				}
				setMode = func(ctx context.Context, p, mode string) error {
					if err := setJournalMode(ctx, p, mode); err != nil {
						return err
					}
					f, err := os.OpenFile(p, os.O_RDWR, 0)
					if err != nil {
						return err
					}
					defer f.Close()
					b := []byte{0}
					f.ReadAt(b, at)
					b[0] ^= 0x01
					_, err = f.WriteAt(b, at)
					return err
				}
				defer func() { setMode = setJournalMode }()
			}
			err = setKeepingContent(ctx, p, tc.to)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.untouched && string(after) != string(before) {
				t.Fatal("a file already in the mode was written")
			}
			if got := cli(t, p, "pragma journal_mode"); got != tc.to {
				t.Fatalf("journal_mode %s, want %s", got, tc.to)
			}
			// Only the rewritten header bytes differ (the independent
			// reading: byte by byte, not contentSum).
			if len(after) != len(before) {
				t.Fatalf("size %d, was %d", len(after), len(before))
			}
			for i := range before {
				if before[i] != after[i] && !isRewritten(i) {
					t.Fatalf("byte %d changed: %#x -> %#x", i, before[i], after[i])
				}
			}
			if got := cli(t, p, "pragma integrity_check"); got != "ok" {
				t.Fatalf("integrity_check: %s", got)
			}
		})
	}
}

func isRewritten(i int) bool {
	for _, r := range rewritten {
		if i >= r[0] && i < r[1] {
			return true
		}
	}
	return false
}

// TestContentSum: the rewritten header bytes do not count, every other
// byte does (the first and last of the file, the rest of the header,
// one in a later read).
func TestContentSum(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "f")
	b := make([]byte, 3<<20+123)
	for i := range b {
		b[i] = byte(i * 7)
	}
	sum := func(b []byte) [32]byte {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := contentSum(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := sum(b)
	for _, at := range []int{0, 17, 18, 19, 20, 23, 24, 27, 28, 91, 92, 99, 100, 1 << 20, len(b) - 1} {
		c := append([]byte(nil), b...)
		c[at] ^= 0x80
		if same := sum(c) == base; same != isRewritten(at) {
			t.Errorf("byte %d flipped: same sum %v, rewritten %v", at, same, isRewritten(at))
		}
	}
	if sum(b[:len(b)-1]) == base {
		t.Error("a shorter file has the same sum")
	}
}

// TestCopiedBackupNotCheckedTwice: a plain local backup whose .sha256
// the check proved is copied into place with that hash and not checked
// again there; one without a sidecar is; one that changes between its
// check and its copy is refused, and nothing is replaced.
func TestCopiedBackupNotCheckedTwice(t *testing.T) {
	ctx := context.Background()
	mkBackup := func(t *testing.T, sidecar bool) string {
		bk := filepath.Join(t.TempDir(), "app.db.20261207_120000")
		cli(t, bk, "create table t(id integer primary key, v blob); create index tv on t(v); insert into t(v) select randomblob(400) from generate_series(1,1500);")
		if sidecar {
			sum, err := manifest.FileSHA256(bk)
			if err != nil {
				t.Fatal(err)
			}
			if err := manifest.WriteSHA256(bk, sum); err != nil {
				t.Fatal(err)
			}
		}
		return bk
	}
	for _, tc := range []struct {
		name    string
		sidecar bool
		tamper  bool
		resum   bool   // the tamperer writes a matching .sha256 too
		want    string // CheckedAs, or the error
	}{
		{"with its .sha256", true, false, false, CheckedCopied},
		{"without a .sha256", false, false, false, CheckedInPlace},
		{"changed after its check", true, true, false, "changed after it was checked"},
		// The copy is compared with the hash the check proved, not with
		// the sidecar read again.
		{"changed with its .sha256 after its check", true, true, true, "changed after it was checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bk := mkBackup(t, tc.sidecar)
			want, err := os.ReadFile(bk)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tamper {
				afterCheck = func() {
					// A byte in a row's blob, as a writer to the backup
					// dir might change it: the file stays a valid
					// database, so only the hash can tell.
					b, _ := os.ReadFile(bk)
					b[len(b)-200] ^= 0x55
					os.WriteFile(bk, b, 0o644)
					if tc.resum {
						sum, _ := manifest.FileSHA256(bk)
						if err := manifest.WriteSHA256(bk, sum); err != nil {
							t.Error(err)
						}
					}
				}
				defer func() { afterCheck = nil }()
			}
			target := filepath.Join(t.TempDir(), "app.db")
			res, err := Run(ctx, Options{Backup: bk, Target: target, Mode: ModeOffline, BusyTimeout: time.Second})
			if tc.tamper {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				if !strings.Contains(hint.Of(err), "sqlite-backup verify ") {
					t.Fatalf("no hint: %v", err)
				}
				if _, serr := os.Stat(target); !os.IsNotExist(serr) {
					t.Fatalf("target written: %v", serr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.CheckedAs != tc.want {
				t.Fatalf("checked_as %q, want %q", res.CheckedAs, tc.want)
			}
			got, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatal("the restored file is not the backup's bytes")
			}
			if got := cli(t, target, "pragma integrity_check"); got != "ok" {
				t.Fatalf("integrity_check: %s", got)
			}
		})
	}
}
