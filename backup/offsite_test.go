package backup

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sqlite-backup/internal/retention"
	"sqlite-backup/remote"
)

// TestPending: what a failed remote lacks waits here only if that
// remote would keep it: one its retention would remove at once (older
// than what it keeps) is not waited for, and a damaged one never goes.
func TestPending(t *testing.T) {
	loc := time.UTC
	day := time.Date(2026, 12, 1, 2, 0, 0, 0, loc)
	var out []remote.Local
	for i := 5; i >= 1; i-- { // newest first
		ts := day.Add(time.Duration(i) * time.Hour)
		name := "app.db." + ts.Format(retention.TimeFormat)
		out = append(out, remote.Local{Backup: retention.Backup{Path: "/b/" + name, Name: name, Time: ts, Seq: 1}, SHA256: fmt.Sprint(i)})
	}
	held := map[string]string{out[3].Name: "2", out[4].Name: "1"} // the two oldest went before the outage
	names := func(ls []remote.Local) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.Name[len("app.db."):])
		}
		return strings.Join(s, " ")
	}
	newest := out[0].Path
	for _, c := range []struct {
		name    string
		policy  retention.Policy
		held    map[string]string
		damaged map[string]bool
		want    string
	}{
		{"keep 2: the two newest wait", retention.Policy{Last: 2}, held, nil, "20261201_070000 20261201_060000"},
		{"keep all: all three wait", retention.Policy{}, held, nil, "20261201_070000 20261201_060000 20261201_050000"},
		{"nothing held: keep 3", retention.Policy{Last: 3}, nil, nil, "20261201_070000 20261201_060000 20261201_050000"},
		{"a damaged one never goes", retention.Policy{Last: 2}, held, map[string]bool{out[1].Path: true}, "20261201_070000 20261201_050000"},
		{"held with another sum is lacking", retention.Policy{Last: 10}, map[string]string{out[0].Name: "x"}, nil, "20261201_070000 20261201_060000 20261201_050000 20261201_040000 20261201_030000"},
	} {
		if got := names(pending(out, c.held, c.damaged, c.policy, newest, loc)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
