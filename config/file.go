package config

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// DefaultFile is read when it exists and no --config is given.
const DefaultFile = "/etc/sqlite-backup.toml"

// Setting is one key of the config file.
type Setting struct {
	Key   string // flag name, dashes: "backup-dir"
	Value any    // string, int64, bool or []string
	Line  int
}

// File is a parsed config file: flat TOML, one "key = value" a line, keys
// spelled like the flags (backup-dir or backup_dir), comments with #.
type File struct {
	Path     string
	Settings map[string]Setting
}

// ParseFile reads the config file format. It accepts the subset of TOML
// that flat settings need — strings, integers, booleans and arrays of
// strings — and rejects everything else with the line number, rather than
// guessing.
func ParseFile(path string, r io.Reader) (*File, error) {
	f := &File{Path: path, Settings: map[string]Setting{}}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(stripComment(sc.Text()))
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "[") {
			return nil, fmt.Errorf("config %q: line %d: sections are not supported; write settings at the top level", path, line)
		}
		key, val, ok := strings.Cut(s, "=")
		key = strings.ReplaceAll(strings.TrimSpace(key), "_", "-")
		key = strings.Trim(key, `"`)
		if !ok || key == "" {
			return nil, fmt.Errorf("config %q: line %d: expected key = value", path, line)
		}
		v, err := parseValue(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("config %q: line %d: %s: %v", path, line, key, err)
		}
		if prev, dup := f.Settings[key]; dup {
			return nil, fmt.Errorf("config %q: line %d: %s is already set on line %d", path, line, key, prev.Line)
		}
		f.Settings[key] = Setting{Key: key, Value: v, Line: line}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config %q: %w", path, err)
	}
	return f, nil
}

// stripComment removes a # comment that is not inside a string.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return s[:i]
		}
	}
	return s
}

func parseValue(v string) (any, error) {
	switch {
	case v == "":
		return nil, fmt.Errorf("missing value")
	case v == "true":
		return true, nil
	case v == "false":
		return false, nil
	case v[0] == '"':
		s, err := strconv.Unquote(v)
		if err != nil {
			return nil, fmt.Errorf("bad string %s", v)
		}
		return s, nil
	case v[0] == '\'':
		if len(v) < 2 || v[len(v)-1] != '\'' || strings.Contains(v[1:len(v)-1], "'") {
			return nil, fmt.Errorf("bad string %s", v)
		}
		return v[1 : len(v)-1], nil
	case v[0] == '[':
		if v[len(v)-1] != ']' {
			return nil, fmt.Errorf("bad array %s (arrays must be on one line)", v)
		}
		var out []string
		for _, item := range splitArray(v[1 : len(v)-1]) {
			s, err := parseValue(item)
			if err != nil {
				return nil, err
			}
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("arrays may only hold strings, got %s", item)
			}
			out = append(out, str)
		}
		return out, nil
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s (strings need quotes)", v)
	}
	return n, nil
}

// splitArray splits the inside of [ … ] at commas outside quotes.
func splitArray(s string) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ',':
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if last := strings.TrimSpace(s[start:]); last != "" {
		out = append(out, last)
	}
	return out
}
