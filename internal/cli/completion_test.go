package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"sqlite-backup/config"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Run([]string{"completion", shell}, &out, &errb); code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errb.String())
	}
	p := filepath.Join(t.TempDir(), "sqlite-backup."+shell)
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bashComplete runs the generated completion function in a real bash
// for the words typed so far (the last one is being completed) and
// returns the sorted candidates.
func bashComplete(t *testing.T, script, dir string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_sqlite_backup\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, stderr.String())
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	return got
}

func TestBashCompletion(t *testing.T) {
	script := completionScript(t, "bash")
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "backups"), 0o755)
	os.WriteFile(filepath.Join(dir, "app.db"), nil, 0o644)

	// The commands are whatever the CLI has.
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("sqlite-backup"), kong.Vars{"version": "", "config_default": config.DefaultFile})
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, n := range parser.Model.Children {
		if !n.Hidden {
			commands = append(commands, n.Name)
		}
	}
	sort.Strings(commands)
	if len(commands) < 6 {
		t.Fatalf("only %d commands in the model: %v", len(commands), commands)
	}

	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sqlite-backup", ""}, strings.Join(commands, " ")},
		{[]string{"sqlite-backup", "ver"}, "verify version"},
		{[]string{"sqlite-backup", "--meth"}, "--method"},
		{[]string{"sqlite-backup", "--method", ""}, "backup vacuum"},
		{[]string{"sqlite-backup", "--method", "=", ""}, "backup vacuum"},
		{[]string{"sqlite-backup", "--method", "=", "v"}, "vacuum"},
		{[]string{"sqlite-backup", "--method", "vacuum", "--no"}, "--no-verify"},
		{[]string{"sqlite-backup", "--backup-dir", ""}, "backups"},
		{[]string{"sqlite-backup", "-s", ""}, "app.db backups"},
		{[]string{"sqlite-backup", "--json", "verify", ""}, "app.db backups"},
		{[]string{"sqlite-backup", "verify", "--q"}, "--quick"},
		{[]string{"sqlite-backup", "verify", "--me"}, ""},
		{[]string{"sqlite-backup", "systemd", "--print", ""}, "both service timer"},
		{[]string{"sqlite-backup", "completion", ""}, "bash zsh"},
		{[]string{"sqlite-backup", "restore", "app"}, "app.db"},
		{[]string{"sqlite-backup", "restore", "app.db", "--to", "b"}, "backups"},
	} {
		if got := strings.Join(bashComplete(t, script, dir, tc.words...), " "); got != tc.want {
			t.Errorf("complete %q: got %q, want %q", tc.words, got, tc.want)
		}
	}

	// Every visible flag of every command completes after "--".
	for _, n := range parser.Model.Children {
		got := bashComplete(t, script, dir, "sqlite-backup", n.Name, "--")
		for _, group := range n.AllFlags(true) {
			for _, f := range group {
				if !slices.Contains(got, "--"+f.Name) {
					t.Errorf("%s: --%s does not complete; got %v", n.Name, f.Name, got)
				}
			}
		}
	}
}

func TestZshCompletionLoads(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Fatal("zsh not found; scripts/install-deps.sh installs it")
	}
	script := completionScript(t, "zsh")
	if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// Sourced after compinit, it registers itself for sqlite-backup;
	// installed on $fpath, compinit finds it by its #compdef line.
	fpath := t.TempDir()
	b, _ := os.ReadFile(script)
	os.WriteFile(filepath.Join(fpath, "_sqlite-backup"), b, 0o644)
	prog := `autoload -U compinit; compinit -u -D
source ` + script + `
print -r -- "sourced=${_comps[sqlite-backup]}"
fpath=(` + fpath + ` $fpath); unfunction _sqlite_backup; unset '_comps[sqlite-backup]'; compinit -u -D
print -r -- "fpath=${_comps[sqlite-backup]}"`
	cmd := exec.Command("zsh", "-f", "-c", prog)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "sourced=_sqlite_backup\nfpath=_sqlite-backup\n" {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
}
