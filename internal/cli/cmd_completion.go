package cli

import (
	"github.com/alecthomas/kong"

	"sqlite-backup/internal/host/completion"
)

// CompletionCmd prints a shell completion script generated from the
// flags this binary has, so it never lags behind them.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh" help:"bash or zsh."`
}

func (c *CompletionCmd) Help() string {
	return `Install for bash:

    sqlite-backup completion bash | sudo tee /etc/bash_completion.d/sqlite-backup

Install for zsh (then start a new shell):

    sqlite-backup completion zsh > "${fpath[1]}/_sqlite-backup"

For the current shell only:

    source <(sqlite-backup completion bash)`
}

func (c *CompletionCmd) Run(kctx *kong.Context, g *Globals) error {
	spec := completionSpec(kctx.Model)
	if c.Shell == "zsh" {
		return completion.Zsh(g.stdout, spec)
	}
	return completion.Bash(g.stdout, spec)
}

// completionSpec reads the kong model: commands, their flags, enums and
// placeholders (FILE/PATH complete files, DIR directories).
func completionSpec(app *kong.Application) completion.Spec {
	s := completion.Spec{Program: app.Name, Globals: completionFlags(app.Flags)}
	if app.DefaultCmd != nil {
		s.Default = app.DefaultCmd.Name
	}
	for _, n := range app.Children {
		if n.Hidden || n.Type != kong.CommandNode {
			continue
		}
		cmd := completion.Command{Name: n.Name, Help: n.Help, Flags: completionFlags(n.Flags)}
		// Positional arguments here are files (verify, restore) unless
		// they are a choice (completion's shell).
		for _, p := range n.Positional {
			cmd.Args, cmd.ArgEnum = completionKind(p, "FILE")
		}
		s.Commands = append(s.Commands, cmd)
	}
	return s
}

func completionFlags(flags []*kong.Flag) []completion.Flag {
	var out []completion.Flag
	for _, f := range flags {
		if f.Hidden {
			continue
		}
		cf := completion.Flag{Long: f.Name, Short: f.Short, Help: f.Help, Value: !f.IsBool() && !f.IsCounter()}
		if cf.Value {
			cf.Kind, cf.Enum = completionKind(f.Value, f.PlaceHolder)
		}
		out = append(out, cf)
	}
	return out
}

func completionKind(v *kong.Value, placeholder string) (completion.Complete, []string) {
	if v.Enum != "" {
		return completion.Enum, v.EnumSlice()
	}
	switch placeholder {
	case "FILE", "PATH", "FILES":
		return completion.Files, nil
	case "DIR":
		return completion.Dirs, nil
	}
	return completion.None, nil
}
