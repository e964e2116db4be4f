package systest

import (
	"encoding/json"
	"testing"

	"sqlite-backup/internal/cli"
)

// oneResult decodes a --json report and its only result into v.
func oneResult(t testing.TB, stdout string, v any) {
	t.Helper()
	var rep struct {
		Schema  int               `json:"schema"`
		OK      bool              `json:"ok"`
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if rep.Schema != cli.JSONSchema || len(rep.Results) != 1 {
		t.Fatalf("--json output %q: want schema %d and one result", stdout, cli.JSONSchema)
	}
	if err := json.Unmarshal(rep.Results[0], v); err != nil {
		t.Fatalf("--json result %s: %v", rep.Results[0], err)
	}
}
