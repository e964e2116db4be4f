package config

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Resolver makes every flag settable from the config file. The file ranks
// below the environment: kong applies env values first and resolvers
// after, so a flag whose env var is set is skipped here.
func (f *File) Resolver() kong.Resolver { return fileResolver{f} }

type fileResolver struct{ f *File }

// Validate rejects keys that are no flag of the tool and values of the
// wrong type, naming the file and the line.
func (r fileResolver) Validate(app *kong.Application) error {
	flags := map[string]*kong.Flag{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, fl := range n.Flags {
			flags[fl.Name] = fl
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(app.Node)
	keys := make([]string, 0, len(r.f.Settings))
	for k := range r.f.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := r.f.Settings[k]
		fl, ok := flags[k]
		if !ok || fl.Name == "help" || fl.Name == "config" || fl.Name == "version" {
			return fmt.Errorf("config %q: line %d: unknown setting %q", r.f.Path, s.Line, k)
		}
		if err := checkType(fl, s.Value); err != nil {
			return fmt.Errorf("config %q: line %d: %s: %v", r.f.Path, s.Line, k, err)
		}
	}
	return nil
}

func checkType(fl *kong.Flag, v any) error {
	t := fl.Value.Target.Type()
	want := ""
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a duration in quotes like \"30s\", got %v", v)
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("expected a duration like \"30s\", got %q", s)
		}
		return nil
	case t.Kind() == reflect.Bool:
		want = "true or false"
		if _, ok := v.(bool); ok {
			return nil
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		want = "a whole number"
		if _, ok := v.(int64); ok {
			return nil
		}
	case t.Kind() == reflect.String:
		want = "a string in quotes"
		if s, ok := v.(string); ok {
			if len(fl.Enum) > 0 && !contains(strings.Split(fl.Enum, ","), s) {
				return fmt.Errorf("expected one of %s, got %q", fl.Enum, s)
			}
			return nil
		}
	case t.Kind() == reflect.Slice:
		want = "a string or an array of strings"
		switch v.(type) {
		case string, []string:
			return nil
		}
	default:
		return nil
	}
	return fmt.Errorf("expected %s, got %v", want, v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

func (r fileResolver) Resolve(_ *kong.Context, _ *kong.Path, fl *kong.Flag) (any, error) {
	s, ok := r.f.Settings[fl.Name]
	if !ok {
		return nil, nil
	}
	for _, env := range fl.Envs {
		if _, set := os.LookupEnv(env); set {
			return nil, nil
		}
	}
	if list, ok := s.Value.([]string); ok {
		// Element by element: kong decodes a []any into a slice flag
		// without splitting on commas a path may contain.
		out := make([]any, len(list))
		for i, v := range list {
			out[i] = v
		}
		return out, nil
	}
	return s.Value, nil
}
