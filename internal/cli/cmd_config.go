package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kong"

	"sqlite-backup/config"
	"sqlite-backup/internal/output/redact"
	"sqlite-backup/remote"
)

// ConfigCmd shows every setting the next backup would use, its value
// and where it came from (flag, env, config file, app .env, default), so
// an operator can see why a cron run did what it did. It takes the same
// flags as backup, to show what a command line would change.
type ConfigCmd struct {
	BackupSettings `embed:""`
}

type setting struct {
	Name   string        `json:"name"`
	Value  string        `json:"value"`
	Origin config.Origin `json:"origin"`
	Detail string        `json:"detail,omitempty"`
}

func (c *ConfigCmd) Run(kctx *kong.Context, g *Globals) error {
	var out []setting
	srcs, srcErr := findSources(kctx, g)
	if srcErr == nil {
		for _, src := range srcs {
			out = append(out, setting{"source", src.Path, src.Origin, src.Detail})
		}
	} else {
		out = append(out, setting{"source", "", config.FromNone, "no database found, see below"})
	}
	for _, f := range kctx.Flags() {
		switch f.Name {
		case "help", "version", "source", "config":
			continue
		}
		o := originOf(kctx, f.Name)
		v := flagValue(kctx, f.Name)
		if f.Name == "remote" || f.Name == "s3-endpoint" {
			// A password in a URL is a secret: config shows it masked.
			v = redactURLs(v)
		}
		// A private key given as a recipient (or anywhere) is never
		// shown, not even in part; a multi-line value stays on its row.
		v = redact.Printable(redact.Secrets(v))
		out = append(out, setting{f.Name, v, o.Origin, o.Detail})
	}
	cfg := setting{Name: "config", Origin: config.FromNone, Detail: g.configErr}
	if g.configFile != nil {
		cfg = setting{"config", g.configFile.Path, config.FromFile, ""}
		if o := originOf(kctx, "config"); o.Origin == config.FromEnv {
			cfg.Origin, cfg.Detail = o.Origin, o.Detail
		} else if o.Origin == config.FromFlag {
			cfg.Origin = config.FromFlag
		} else {
			cfg.Origin = config.FromDefault
		}
	}
	out = append(out, cfg)

	if g.JSON {
		for _, s := range out {
			g.addResult(s)
		}
		if srcErr != nil {
			fmt.Fprintf(g.stderr(), "sqlite-backup: warning: %v\n", srcErr)
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, s := range out {
		where := string(s.Origin)
		if s.Detail != "" {
			where += " (" + s.Detail + ")"
		}
		v := s.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, v, where)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if srcErr != nil {
		fmt.Fprintf(g.stderr(), "sqlite-backup: warning: %v\n", srcErr)
	}
	return nil
}

type origin struct {
	Origin config.Origin
	Detail string
}

// originOf says whether a flag's value came from the command line, the
// config file (kong marks resolver values Resolved), its env var or the
// default.
func originOf(kctx *kong.Context, name string) origin {
	var fl *kong.Flag
	for _, p := range kctx.Path {
		if p.Flag != nil && p.Flag.Name == name {
			if p.Resolved {
				return origin{config.FromFile, ""}
			}
			return origin{config.FromFlag, "--" + name}
		}
	}
	for _, f := range kctx.Flags() {
		if f.Name == name {
			fl = f
		}
	}
	if fl == nil {
		return origin{config.FromNone, ""}
	}
	for _, env := range fl.Envs {
		if _, ok := os.LookupEnv(env); ok {
			return origin{config.FromEnv, env}
		}
	}
	return origin{config.FromDefault, ""}
}

// redactURLs masks the password of each URL in a comma-separated list.
func redactURLs(v string) string {
	if v == "" {
		return v
	}
	us := strings.Split(v, ",")
	for i, u := range us {
		us[i] = remote.Redact(u)
	}
	return strings.Join(us, ",")
}

func flagValue(kctx *kong.Context, name string) string {
	for _, f := range kctx.Flags() {
		if f.Name == name {
			switch v := f.Target.Interface().(type) {
			case []string:
				return strings.Join(v, ",")
			case string:
				return v
			}
			return fmt.Sprint(f.Target.Interface())
		}
	}
	return ""
}
