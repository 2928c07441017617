package doctest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../.."

// docLine is one command shown in a doc.
type docLine struct {
	file string
	line int
	text string
	// want is the output the doc shows after a "$ " line (up to the next "$ " line
	// or the block's end); empty when it shows none.
	want string
}

// commands returns the command lines of fenced blocks in README.md and docs/*.md.
func commands(t *testing.T) []docLine {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	start := regexp.MustCompile(`^(\$ |sudo )*(bin/)?(posctl|posd|posgw|posfleet|make)(\s|$)`)
	var out []docLine
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		in, n, cont := false, 0, ""
		shown := -1 // the last "$ " line, collecting its output
		for sc.Scan() {
			n++
			l := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				in = !in
				shown = -1
				continue
			}
			if !in {
				continue
			}
			if shown >= 0 && !strings.HasPrefix(l, "$ ") {
				out[shown].want += l + "\n"
				continue
			}
			prompted := strings.HasPrefix(l, "$ ")
			shown = -1
			l = strings.TrimSpace(l)
			if cont != "" {
				l = cont + " " + l
				cont = ""
			}
			if strings.HasSuffix(l, "\\") {
				cont = strings.TrimSuffix(l, "\\")
				continue
			}
			for {
				t := strings.TrimPrefix(strings.TrimPrefix(l, "$ "), "sudo ")
				if t == l {
					break
				}
				l = t
			}
			if start.MatchString(l) {
				out = append(out, docLine{file: filepath.Base(f), line: n, text: l})
				if prompted {
					shown = len(out) - 1
				}
			}
		}
		fh.Close()
	}
	if len(out) < 20 {
		t.Fatalf("only %d command lines found in the docs", len(out))
	}
	return out
}

// words splits a command line as a shell would, enough for the docs: quotes, and an
// end at a comment, a pipe, a background & or a redirection.
func words(s string) []string {
	var (
		out   []string
		cur   strings.Builder
		quote rune
		have  bool
	)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, have = r, true
		case r == ' ' || r == '\t':
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		case (r == '#' && !have) || r == '|' || r == '&' || r == '>' || r == ';':
			if have {
				out = append(out, cur.String())
			}
			return out
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// build builds the commands once.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, c := range []string{"posctl", "posd", "posgw", "posfleet"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, c), "./cmd/"+c)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", c, err, out)
		}
	}
	return dir
}

// subcommands with a second level: posctl store check, posctl token create, …
var twoLevel = map[string]bool{"posctl store": true, "posctl token": true, "posctl receipt": true, "posctl paycode": true, "posctl merchant": true, "posgw ledger": false, "posfleet config": true, "posfleet firmware": true, "posctl firmware": true, "posctl config": true}

// runnable says whether a line needs nothing but the binary (no posd, broker,
// database or hardware), so the test runs it. Everything else is the allow-list of
// lines checked but not run.
func runnable(w []string) bool {
	j := strings.Join(w, " ")
	if strings.Contains(j, "[") {
		return false // a synopsis, not a command
	}
	for _, p := range []string{"posctl paycode decode", "posctl merchant check ", "posctl receipt sample", "posctl help", "posctl version", "posd -version", "posctl print-test -printer emulator:"} {
		if strings.HasPrefix(j, p) {
			return true
		}
	}
	return false
}

func TestDocCommands(t *testing.T) {
	bin := build(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	helps := map[string]string{}
	help := func(args ...string) string {
		k := strings.Join(args, " ")
		if h, ok := helps[k]; ok {
			return h
		}
		out, _ := exec.Command(filepath.Join(bin, args[0]), append(args[1:], "-h")...).CombinedOutput()
		helps[k] = string(out)
		return string(out)
	}
	flagRe := regexp.MustCompile(`^-{1,2}([a-z][a-z0-9-]*)`)
	ran := 0
	for _, dl := range commands(t) {
		w := words(dl.text)
		if len(w) == 0 {
			continue
		}
		where := dl.file + ":" + itoa(dl.line) + ": " + dl.text
		name := strings.TrimPrefix(w[0], "bin/")
		if name == "make" {
			for _, target := range w[1:] {
				if strings.Contains(target, "=") || strings.HasPrefix(target, "-") {
					continue
				}
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
					t.Errorf("%s: no make target %q", where, target)
				}
			}
			continue
		}
		path := []string{name}
		rest := w[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && !strings.HasPrefix(rest[0], "[") && rest[0] != "..." {
			if name == "posctl" || name == "posfleet" || (name == "posgw" && rest[0] == "ledger") {
				path = append(path, rest[0])
				rest = rest[1:]
				if twoLevel[strings.Join(path, " ")] && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && !strings.HasPrefix(rest[0], "[") {
					path = append(path, rest[0])
					rest = rest[1:]
				}
			}
		}
		h := help(path...)
		if name == "posctl" && len(path) > 1 && strings.Contains(h, "unknown command") {
			t.Errorf("%s: posctl has no command %q", where, path[1])
			continue
		}
		for _, a := range rest {
			a = strings.Trim(a, "[]")
			m := flagRe.FindStringSubmatch(a)
			if m == nil || a == "-" {
				continue
			}
			if !strings.Contains(h, "-"+m[1]+" ") && !strings.Contains(h, "-"+m[1]+"\n") && !strings.Contains(h, "-"+m[1]+"\t") {
				t.Errorf("%s: %s has no flag -%s", where, strings.Join(path, " "), m[1])
			}
		}
		if runnable(append([]string{name}, w[1:]...)) {
			cmd := exec.Command(filepath.Join(bin, name), w[1:]...)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			switch {
			case dl.want != "":
				// The doc shows the output (a failing example shows its exit status
				// in the text): the output must be what the doc says.
				if strings.TrimSpace(string(out)) != strings.TrimSpace(dl.want) {
					t.Errorf("%s: the output differs from the doc:\n got: %s\nwant: %s", where, out, dl.want)
				}
			case err != nil:
				t.Errorf("%s: %v\n%s", where, err, out)
			}
			ran++
		}
	}
	t.Logf("ran %d doc commands; the others were checked for their subcommand and flags", ran)
	if ran < 5 {
		t.Errorf("only %d doc commands were run", ran)
	}
}

func itoa(n int) string {
	s := ""
	for n > 0 || s == "" {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}
