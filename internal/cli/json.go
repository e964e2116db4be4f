package cli

import (
	"encoding/json"
	"io"
	"strings"

	"sqlite-backup/internal/output/hint"
)

// JSONSchema is the version of the --json shape (docs/JSON.md). A new
// field is not a new version; a renamed, removed or retyped one is.
const JSONSchema = 1

// jsonReport is the one object every command prints with --json, on
// success and on failure alike: what ran, whether it all went well, one
// result per database, file, backup or setting, and the error (also on
// stderr) when there was one.
type jsonReport struct {
	Schema   int    `json:"schema"`
	Command  string `json:"command"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"`
	Results  []any  `json:"results"`
	Error    string `json:"error,omitempty"`
	Hint     string `json:"hint,omitempty"`
}

// errorResult is one database or file that failed before there was
// anything else to say about it.
type errorResult struct {
	Source string `json:"source,omitempty"`
	Path   string `json:"path,omitempty"`
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
	Hint   string `json:"hint,omitempty"`
}

func failedResult(source, path string, err error) errorResult {
	return errorResult{Source: source, Path: path, Error: err.Error(), Hint: hint.Of(err)}
}

// addResult records one result for --json.
func (g *Globals) addResult(v any) { g.results = append(g.results, v) }

// writeJSON prints the report; err is what Run printed on stderr.
func writeJSON(w io.Writer, command string, results []any, code int, err error) {
	r := jsonReport{Schema: JSONSchema, Command: command, OK: code == exitOK, ExitCode: code, Results: results}
	if r.Results == nil {
		r.Results = []any{}
	}
	if err != nil {
		r.Error = err.Error()
		r.Hint = hint.Of(err)
	}
	json.NewEncoder(w).Encode(r)
}

// commandName is the command's first word: "verify", not "verify <file>".
func commandName(path string) string {
	f := strings.Fields(path)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
