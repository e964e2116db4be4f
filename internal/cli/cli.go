// Package cli is the sqlite-backup command line: one file per command
// (cmd_*.go), each a kong struct whose Run turns flags into an options
// struct and calls a package; this package maps errors to exit codes and
// prints the results (text or --json), progress on a terminal and the
// passphrase prompt. It does no backup work of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"sqlite-backup/config"
	"sqlite-backup/internal/output/hint"
	"sqlite-backup/internal/output/journal"
	"sqlite-backup/internal/output/progress"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/remote"
	"sqlite-backup/verify"
)

// Exit codes, documented in the README and --help.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitVerify    = 3
	exitSIGINT    = 130
	exitSIGTERM   = 143
	exitCodesHelp = "Exit codes: 0 ok; 1 operational error (I/O, permission, lock timeout, missing source); 2 usage error; 3 a file failed verification; 130/143 interrupted by SIGINT/SIGTERM."
)

// CLI is the whole command line. Backup is the default command so the
// habits of backup_database.py keep working: `sqlite-backup --source x`.
type CLI struct {
	Globals

	Backup  BackupCmd  `cmd:"" default:"withargs" help:"Back up the database (the default command)."`
	Verify  VerifyCmd  `cmd:"" help:"Check existing backup files with PRAGMA integrity_check."`
	Restore RestoreCmd `cmd:"" help:"Put a verified backup back in place of the database."`
	List    ListCmd    `cmd:"" help:"List the backups in --backup-dir, newest first."`
	Prune   PruneCmd   `cmd:"" help:"Remove old backups of the database by the --keep rules."`
	Config  ConfigCmd  `cmd:"" help:"Show the resolved settings and where each came from."`
	Version VersionCmd `cmd:"" help:"Show version, Go and SQLite versions, and platform."`
	Systemd SystemdCmd `cmd:"" help:"Print a systemd service and timer that run the backup on a schedule (installs nothing)."`

	Completion CompletionCmd `cmd:"" help:"Print a bash or zsh completion script."`
	Help       HelpCmd       `cmd:"" help:"Show help for a command (same as --help)."`
}

// Globals are the flags every command shares.
type Globals struct {
	Source      []string         `short:"s" sep:"none" placeholder:"PATH" help:"Database to back up: a path or a sqlite:/// URL; repeat for several (a glob in the config file). Default: DATABASE_URL from the environment or the app's .env."`
	BackupDir   string           `default:"/backup" placeholder:"DIR" help:"Directory for timestamped backups <db-file>.YYYYMMDD_HHMMSS (default ${default})."`
	AppDir      string           `default:"." placeholder:"DIR" help:"Application directory whose .env may hold DATABASE_URL."`
	Config      string           `placeholder:"FILE" help:"Config file with flag = value lines (default ${config_default} if it exists)."`
	BusyTimeout time.Duration    `default:"30s" placeholder:"DUR" help:"How long to wait for another process's lock on the source (default ${default})."`
	JSON        bool             `help:"Print results as JSON on stdout."`
	VersionFlag kong.VersionFlag `name:"version" env:"-" help:"Print the version and exit."`

	configFile *config.File // the file actually read, if any
	configErr  string       // why none was read
	results    []any        // for --json, see json.go
	stdout     io.Writer
	stderrW    io.Writer // warnings and progress (only on a terminal); see stderr()
}

// Run is the whole command line: it parses args, runs the command and
// returns the exit code (main exits with it).
func Run(args []string, stdout, stderr io.Writer) int {
	unsetEmptyEnv()
	// Whatever reaches stdout or stderr passes the scrubber: a private key given
	// by mistake is never echoed, a name with escape sequences never
	// drives the terminal (see internal/output/redact).
	stdout, stderr = scrubbed{stdout}, scrubbed{stderr}
	var cli CLI
	cli.stdout = stdout
	cli.stderrW = stderr
	cfgPath, explicit := configPath(args)
	var resolvers []kong.Resolver
	if cfgPath != "" {
		f, err := loadConfig(cfgPath)
		switch {
		case err == nil:
			cli.configFile = f
			resolvers = append(resolvers, f.Resolver())
		case explicit || !errors.Is(err, os.ErrNotExist):
			printError(stderr, err)
			if wantsJSON(args) {
				writeJSON(stdout, "", nil, exitUsage, err)
			}
			return exitUsage
		default:
			cli.configErr = cfgPath + ": no such file"
		}
	}

	exitCode := -1
	parser, err := kong.New(&cli,
		kong.Name("sqlite-backup"),
		kong.Description("Consistent, verified backups of live SQLite databases.\n\n"+exitCodesHelp),
		kong.Vars{"version": versionLine(), "config_default": config.DefaultFile},
		kong.DefaultEnvars("SQLITE_BACKUP"),
		kong.Resolvers(resolvers...),
		kong.Writers(stdout, stderr),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Help(printHelp),
		kong.Exit(func(code int) { exitCode = code }),
		kong.Bind(&cli.Globals),
	)
	if err != nil {
		printError(stderr, err)
		return exitUsage
	}
	// Check the config file before parsing: kong resolves values before it
	// validates, and a wrong type should be reported with file and line.
	if cli.configFile != nil {
		if err := cli.configFile.Resolver().Validate(parser.Model); err != nil {
			err = hint.Wrap(err, "settings are the long flag names, e.g. backup-dir = \"/backup\"; see sqlite-backup --help")
			printError(stderr, err)
			if wantsJSON(args) {
				writeJSON(stdout, "", nil, exitUsage, err)
			}
			return exitUsage
		}
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help or --version
		return exitCode
	}
	if err != nil {
		err = usageHint(parser.Model, args, err)
		printError(stderr, err)
		if cli.JSON || wantsJSON(args) {
			writeJSON(stdout, "", nil, exitUsage, err)
		}
		return exitUsage
	}
	command := commandName(kctx.Command())
	if command == "backup" && len(cli.Backup.Verify) > 0 {
		command = "verify" // --verify FILE is the verify command
	}
	asJSON := cli.JSON && command != "completion" && command != "help"
	if CheckParsed != nil {
		if err := CheckParsed(kctx); err != nil {
			printError(stderr, err)
			return exitError
		}
	}

	ctx, stop, signalled := signalContext()
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run()
	if exitCode >= 0 { // the help command
		return exitCode
	}
	code := exitCodeOf(err, signalled())
	if asJSON {
		defer writeJSON(stdout, command, cli.results, code, err)
	}
	switch {
	case err == nil:
	case code == exitSIGINT || code == exitSIGTERM:
		what := "nothing published or replaced"
		var d *doneBefore
		if errors.As(err, &d) {
			what = d.done
		}
		fmt.Fprintf(stderr, "sqlite-backup: interrupted by %s; stopped, temp files removed; %s\n", signalName(signalled()), what)
	default:
		printError(stderr, err)
	}
	return code
}

// exitCodeOf maps a command's error to the documented exit codes.
func exitCodeOf(err error, sig syscall.Signal) int {
	if err == nil {
		return exitOK
	}
	switch sig {
	case syscall.SIGINT:
		return exitSIGINT
	case 0:
	default:
		return exitSIGTERM
	}
	var ue *usageError
	var re *remote.Error
	var vf *verify.FailedError
	var vfs *verifyFailed
	switch {
	case errors.As(err, &ue), errors.As(err, &re) && re.Kind == remote.KindUsage:
		return exitUsage
	case errors.As(err, &vf), errors.As(err, &vfs):
		return exitVerify
	}
	return exitError
}

// wantsJSON finds --json in a command line kong could not parse.
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return os.Getenv("SQLITE_BACKUP_JSON") == "true" || os.Getenv("SQLITE_BACKUP_JSON") == "1"
}

// CheckParsed, set only by the tests (internal/testguard), sees every
// parsed command line before it runs: the guard that no test run writes
// outside its temp dirs.
var CheckParsed func(kctx *kong.Context) error

// printError writes "sqlite-backup: error: …" and, when the error carries
// one, a "hint: …" line with an example that works.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "%ssqlite-backup: error: %s\n", journal.Prefix(w, journal.Err), scrub(err.Error()))
	if h := hint.Of(err); h != "" {
		fmt.Fprintf(w, "%shint: %s\n", journal.Prefix(w, journal.Notice), scrub(h))
	}
}

// scrub is a message as it may be printed: no key material, no URL
// password, no control characters but newlines and tabs.
func scrub(s string) string { return redact.Text(redact.Secrets(s)) }

// scrubbed is stdout or stderr through scrub. Each write is scrubbed
// whole: the commands write a line, a table cell or the --json report
// at a time, and values that may hold a secret over several lines
// (config) are scrubbed before they are laid out. Progress lines on a
// terminal, which draw with control characters, go to the file itself
// (terminal); journald's priority prefix looks through it (Unwrap).
type scrubbed struct{ w io.Writer }

func (s scrubbed) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s scrubbed) Unwrap() io.Writer { return s.w }

// terminal is the terminal behind w, if w is one (progress lines).
func terminal(w io.Writer) (*os.File, bool) {
	if u, ok := w.(interface{ Unwrap() io.Writer }); ok {
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	return f, ok && progress.IsTerminal(f)
}

// doneBefore is an error that came after the command had already
// changed something that stays changed (a backup published, a database
// replaced): an interruption's message must say so, not that nothing was.
type doneBefore struct {
	err  error
	done string
}

func (e *doneBefore) Error() string { return e.err.Error() }
func (e *doneBefore) Unwrap() error { return e.err }

// signalName is what an operator sends: SIGINT, not "interrupt".
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// doneWith wraps err to say what was done to paths ("already
// published: a, b"), if anything was.
func doneWith(err error, what string, paths []string) error {
	if len(paths) == 0 {
		return err
	}
	const shown = 5
	list := strings.Join(paths[:min(len(paths), shown)], ", ")
	if len(paths) > shown {
		list += fmt.Sprintf(" and %d more", len(paths)-shown)
	}
	return &doneBefore{err: err, done: what + ": " + list}
}

// usageError is a mistake in how the tool was called (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(h, format string, a ...any) error {
	return &usageError{hint.Wrap(fmt.Errorf(format, a...), "%s", h)}
}

// signalContext cancels on SIGINT/SIGTERM and remembers which came, so
// the exit code can say 130 or 143 after the temp file is cleaned up.
func signalContext() (context.Context, func(), func() syscall.Signal) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	got := make(chan syscall.Signal, 1)
	go func() {
		if s, ok := <-ch; ok {
			got <- s.(syscall.Signal)
			cancel()
		}
	}()
	stop := func() { signal.Stop(ch); cancel() }
	signalled := func() syscall.Signal {
		select {
		case s := <-got:
			got <- s
			return s
		default:
			return 0
		}
	}
	return ctx, stop, signalled
}

// configPath finds the config file before kong parses, because the file
// feeds kong's resolvers: --config, then SQLITE_BACKUP_CONFIG, then the
// default path. explicit is false for the default path, which may be
// missing.
func configPath(args []string) (path string, explicit bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v, true
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1], true
		}
	}
	if v := os.Getenv("SQLITE_BACKUP_CONFIG"); v != "" {
		return v, true
	}
	return config.DefaultFile, false
}

// unsetEmptyEnv treats SQLITE_BACKUP_X= like an unset variable, as shells
// and systemd units commonly blank a setting that way.
func unsetEmptyEnv() {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" && strings.HasPrefix(k, "SQLITE_BACKUP_") {
			os.Unsetenv(k)
		}
	}
}

func loadConfig(path string) (*config.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config %q: %w", path, err)
	}
	defer f.Close()
	return config.ParseFile(path, f)
}

func (g *Globals) stderr() io.Writer {
	if g.stderrW != nil {
		return g.stderrW
	}
	return os.Stderr
}
