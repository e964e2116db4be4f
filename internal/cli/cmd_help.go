package cli

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"sqlite-backup/internal/output/hint"
)

// HelpCmd is `sqlite-backup help [command]`, the same text as --help.
type HelpCmd struct {
	Command []string `arg:"" optional:"" help:"Command to explain."`
}

func (c *HelpCmd) Run(kctx *kong.Context) error {
	// Parse again with --help: kong prints the page (with "did you mean"
	// for a typo'd command) and calls its Exit hook, which Run reads.
	_, err := kctx.Kong.Parse(append(append([]string{}, c.Command...), "--help"))
	if err != nil {
		return &usageError{usageHint(kctx.Model, c.Command, err)}
	}
	return nil
}

// sharedFlags are the global flags each command uses; its help page
// shows only those, not all six on every page.
var sharedFlags = map[string][]string{
	"backup":     {"source", "backup-dir", "app-dir", "config", "busy-timeout", "json"},
	"config":     {"source", "backup-dir", "app-dir", "config", "busy-timeout", "json"},
	"verify":     {"config", "busy-timeout", "json"},
	"restore":    {"source", "app-dir", "config", "busy-timeout", "json"},
	"list":       {"source", "backup-dir", "app-dir", "config", "json"},
	"prune":      {"source", "backup-dir", "app-dir", "config", "json"},
	"systemd":    {"source", "backup-dir", "app-dir", "config", "busy-timeout", "json"},
	"version":    {"json"},
	"completion": {},
	"help":       {},
}

// backupGroup titles the backup flags on the top-level page: backup is
// the default command, so its flags are the ones users reach for first.
var backupGroup = &kong.Group{Key: "backup", Title: "Backup flags (all of them: sqlite-backup backup --help):"}

// topBackupFlags are the backup flags the top-level page shows.
var topBackupFlags = []string{"backup", "keep", "compress", "verify", "metrics-file"}

// printHelp is kong's help printer with the two changes above. It
// changes the model only while it prints.
func printHelp(options kong.HelpOptions, ctx *kong.Context) error {
	app := ctx.Model
	selected := ctx.Selected()
	var restore []func()
	defer func() {
		for _, r := range restore {
			r()
		}
	}()
	if selected == nil {
		for _, n := range app.Children {
			if n.Name != "backup" {
				continue
			}
			saved := app.Flags
			restore = append(restore, func() { app.Flags = saved })
			var added []*kong.Flag
			for _, f := range n.Flags {
				if slices.Contains(topBackupFlags, f.Name) {
					cp := *f
					cp.Group = backupGroup
					added = append(added, &cp)
				}
			}
			app.Flags = append(append([]*kong.Flag{}, app.Flags...), added...)
		}
		return kong.DefaultHelpPrinter(options, ctx)
	}
	keep := sharedFlags[selected.Name]
	for _, f := range app.Flags {
		if f.Hidden || f.Name == "help" {
			continue
		}
		if !slices.Contains(keep, f.Name) {
			f.Hidden = true
			restore = append(restore, func() { f.Hidden = false })
		}
	}
	return kong.DefaultHelpPrinter(options, ctx)
}

// usageHint adds the way out to a parse error. Because backup is the
// default command and takes every flag at the top level, kong reports a
// typo'd command or a bare path as an "unexpected argument" of backup,
// without its "did you mean": this says what was probably meant.
func usageHint(app *kong.Application, args []string, err error) error {
	var names, close []string
	for _, n := range app.Children {
		if n.Type == kong.CommandNode && !n.Hidden {
			names = append(names, n.Name)
		}
	}
	if m := enumErr.FindStringSubmatch(err.Error()); m != nil {
		return enumHint(args, names, err, m[1], m[2], m[3])
	}
	arg, ok := strings.CutPrefix(err.Error(), "unexpected argument ")
	if !ok || strings.Contains(arg, " ") {
		return hint.Wrap(err, "%s --help", commandOf(args, names))
	}
	// Past a command name it is that command's extra argument.
	for _, a := range args {
		if a == arg {
			break
		}
		if slices.Contains(names, a) {
			return hint.Wrap(err, "sqlite-backup %s --help", a)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, arg) || levenshtein(n, arg) <= 2 {
			close = append(close, n)
		}
	}
	looksLikeFile := strings.ContainsAny(arg, "/.") || fileExists(arg)
	switch {
	case len(close) == 1:
		return hint.Wrap(fmt.Errorf("unknown command %q, did you mean %q?", arg, close[0]), "sqlite-backup %s --help", close[0])
	case len(close) > 1:
		return hint.Wrap(fmt.Errorf("unknown command %q, did you mean one of %s?", arg, strings.Join(close, ", ")), "sqlite-backup help")
	case looksLikeFile:
		return hint.Wrap(fmt.Errorf("unexpected argument %q: the database is given with --source", arg), "sqlite-backup --source %s", shellQuote(arg))
	}
	return hint.Wrap(fmt.Errorf("unknown command %q; the commands are %s", arg, strings.Join(names, ", ")), "sqlite-backup help")
}

// enumErr is kong's message for a value outside a flag's choices.
var enumErr = regexp.MustCompile(`^(--[a-z0-9-]+) must be one of ((?:"[^"]*",?)+) but got "(.*)"$`)

// enumHint turns a value outside a flag's choices into "did you mean"
// when one choice is close (a prefix, a letter or two off, another case),
// with that choice in a working example.
func enumHint(args, names []string, err error, flag, list, got string) error {
	var choices, close []string
	for _, c := range strings.Split(list, ",") {
		choices = append(choices, strings.Trim(c, `"`))
	}
	for _, c := range choices {
		l := strings.ToLower(got)
		if got != "" && (strings.HasPrefix(c, l) || strings.HasPrefix(l, c) || levenshtein(c, l) <= 2) {
			close = append(close, c)
		}
	}
	all := strings.Join(choices, ", ")
	if len(close) == 1 {
		return hint.Wrap(fmt.Errorf("%s %q: did you mean %q? (one of %s)", flag, got, close[0], all), "%s %s %s", commandOf(args, names), flag, close[0])
	}
	return hint.Wrap(fmt.Errorf("%s %q: must be one of %s", flag, got, all), "%s %s %s", commandOf(args, names), flag, choices[0])
}

// commandOf is "sqlite-backup CMD" for the first command name in args.
func commandOf(args, names []string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		if slices.Contains(names, a) && a != "help" {
			return "sqlite-backup " + a
		}
	}
	return "sqlite-backup"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// shellQuote quotes s for a hint's command line only where a shell needs it.
func shellQuote(s string) string { return hint.Quote(s) }

// levenshtein is the edit distance, for "did you mean".
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
