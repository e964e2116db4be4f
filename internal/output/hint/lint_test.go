package hint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// quoters are the calls whose result may stand in a hint's command:
// they shell-quote what they are given, or (remote/sftp's keyscan and
// sshCmd) build a command of quoted values.
var quoters = map[string]bool{"Quote": true, "QuoteGlob": true, "shellQuote": true, "quote": true, "backupExample": true, "keyscan": true, "sshCmd": true}

// prose are values a hint shows that are not pasted as a word of a
// command, or cannot hold anything a shell would act on, by file and
// expression, with why.
var prose = map[string]string{
	"internal/cli/cmd_help.go: commandOf(args, names)":   "\"sqlite-backup\" and a command name from the model",
	"internal/cli/cmd_help.go: a":                        "a command name from the model",
	"internal/cli/cmd_help.go: close[0]":                 "a command name from the model",
	"internal/cli/cmd_hints.go: me":                      "\"user NAME may not write\": prose",
	"internal/cli/cmd_hints.go: d":                       "\"may not write DIR\": prose; the command quotes it",
	"internal/cli/cmd_hints.go: to":                      "built of shellQuote'd parts",
	"internal/cli/cmd_verify.go: strings.Join(q, \" \")": "each one shellQuote'd",
	"internal/cli/cli.go: h":                             "usagef: checked at each call",
	"remote/remote.go: h":                                "Fail: checked at each backend's call",
	"remote/s3/s3.go: h":                                 "fail: checked at each call",
	"internal/snapshot/snapshot.go: h":                   "a write error's hint, built in writeerr.go",
	"internal/format/compress/compress.go: fullHint":     "\"free space in DIR\": prose",
	"verify/file.go: compress.FullHint(dir)":             "\"free space in DIR\": prose",
	"restore/restore.go: res.SafetyCopy":                 "\"saved in PATH\": prose",
	"internal/cli/cmd_help.go: flag":                     "a flag name from the model",
	"internal/cli/cmd_help.go: choices[0]":               "an enum value from the model",
	"internal/cli/cmd_hints.go: h":                       "built of shellQuote'd parts above",
	"internal/cli/cmd_systemd.go: f.Name":                "a flag name, in a config file line",
	"internal/cli/cmd_systemd.go: g.configFile.Path":     "\"in FILE\": prose",
	"remote/s3/s3.go: bucketRules":                       "a constant",
	"remote/s3/s3.go: c.profile":                         "\"the [PROFILE] section of FILE\": prose",
	"remote/s3/s3.go: c.makeBucket()":                    "shellQuote's the endpoint and bucket itself",
	"restore/space.go: more":                             "a size",
	"restore/space.go: qdir":                             "hint.Quote(dir) above",
	"restore/space.go: old":                              "hint.Quote(…)+\"*\" above",
	"remote/sftp/sftp.go: h":                             "fail: checked at each call",
	"remote/sftp/sftp.go: check":                         "a fingerprint and ssh-keygen -lf of a fixed path by key type",
	"backup/offsite.go: cmd":                             "built of hint.Quote'd parts above",
}

// formats are hint formats that may use %q, by file and format, with why.
var formats = map[string]string{
	"internal/cli/cmd_systemd.go: write %s = %q in %s": "a config file line, in the config file's own string quoting",
}

// skipFiles: files whose hints this test does not read (none).
var skipFiles = map[string]bool{}

// TestHintsQuotePaths reads every hint the tool can give (hint.Wrap,
// usagef and the backends' fail calls, outside tests) and requires that
// no value reaches a hint unquoted: no %q (Go quoting, in which a shell
// still runs $(…) and `…`), and every %s or %v or concatenated value a
// quoted one (hint.Quote) or one listed in prose with why. A directory
// named x$(touch pwned) must never turn a pasted hint into code.
func TestHintsQuotePaths(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	var checked int
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || skipFiles[rel] {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		src, _ := os.ReadFile(p)
		text := func(e ast.Expr) string {
			return string(src[fset.Position(e.Pos()).Offset:fset.Position(e.End()).Offset])
		}
		bad := func(e ast.Expr, why string) {
			t.Errorf("%s:%d: hint %s: %s", rel, fset.Position(e.Pos()).Line, why, text(e))
		}
		var checkValue func(e ast.Expr)
		var checkFormat func(format ast.Expr, args []ast.Expr)
		checkValue = func(e ast.Expr) {
			switch v := e.(type) {
			case *ast.BasicLit:
				return
			case *ast.BinaryExpr:
				checkValue(v.X)
				checkValue(v.Y)
				return
			case *ast.ParenExpr:
				checkValue(v.X)
				return
			case *ast.CallExpr:
				switch fn := v.Fun.(type) {
				case *ast.SelectorExpr:
					if quoters[fn.Sel.Name] {
						return
					}
					if id, ok := fn.X.(*ast.Ident); ok && id.Name == "fmt" && fn.Sel.Name == "Sprintf" && len(v.Args) > 0 {
						checkFormat(v.Args[0], v.Args[1:])
						return
					}
				case *ast.Ident:
					if quoters[fn.Name] {
						return
					}
				}
			}
			if _, ok := prose[rel+": "+text(e)]; ok {
				return
			}
			bad(e, "shows an unquoted value (hint.Quote it, or list it in prose with why)")
		}
		checkFormat = func(format ast.Expr, args []ast.Expr) {
			checked++
			lit, ok := format.(*ast.BasicLit)
			if !ok {
				checkValue(format)
				return
			}
			fs, _ := strconv.Unquote(lit.Value)
			verbs := verbRE.FindAllString(fs, -1)
			n := 0
			for _, v := range verbs {
				if v == "%%" {
					continue
				}
				if _, ok := formats[rel+": "+fs]; strings.HasSuffix(v, "q") && !ok {
					bad(format, "uses %q, which a shell does not take as quoting")
				}
				if n < len(args) && (strings.HasSuffix(v, "s") || strings.HasSuffix(v, "v")) {
					checkValue(args[n])
				}
				n++
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				id, _ := fn.X.(*ast.Ident)
				switch {
				case id != nil && id.Name == "hint" && fn.Sel.Name == "Wrap" && len(call.Args) >= 2:
					checkFormat(call.Args[1], call.Args[2:])
				case id != nil && id.Name == "remote" && fn.Sel.Name == "Fail" && len(call.Args) == 5,
					fn.Sel.Name == "fail" && len(call.Args) == 4:
					checked++
					checkValue(call.Args[len(call.Args)-1])
				}
			case *ast.Ident:
				if fn.Name == "usagef" && len(call.Args) >= 1 {
					checked++
					checkValue(call.Args[0])
				}
			}
			return true
		})
		return nil
	})
	if checked < 80 {
		t.Errorf("checked %d hints; the walk missed files", checked)
	}
}

var verbRE = regexp.MustCompile(`%[-+# 0-9.*]*[a-zA-Z%]`)
