package approval

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

var (
	bashRandom = flag.Int("bash-random", 0, "TestAgainstBash also runs this many random lines")
	bashSeed   = flag.Uint64("bash-seed", 14, "seed of the random lines of -bash-random")
)

// randomLines returns n lines made of tokens that run nothing but the rm
// stub and harmless programs: no &, no function definitions.
func randomLines(n int) []string {
	tokens := []string{"rm", "rm", "r", "m", "'r'm", `\rm`, `r\m`, "''", `""`, "x", "ls", "echo", "true", "eval", "env", "env A=1",
		"command", "exec", "xargs", "nice", "timeout 1", "sh -c", "bash -c", "time",
		" ", " ", " ", " ", ";", "&&", "||", "|", "$(", ")", "`", "'", "'", `"`, `"`, `\`, "$", "=", "{", "}", "\n", "<<<", "a=", "$a", "-",
		"${a:-rm}", `"$@"`, "r?", "[m]", "((", "))", "a[", "]", "${!", "${a@P}", "read", "printf -v", "declare", "$((", "let"}
	r := rand.New(rand.NewPCG(*bashSeed, 14))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range 2 + r.IntN(10) {
			b.WriteString(tokens[r.IntN(len(tokens))])
		}
		out[i] = b.String()
	}
	return out
}

// wrapperWords are words a wrapper's option parsing may meet.
var wrapperWords = map[string][]string{
	"env":     {"-i", "-u", "A", "-C", "/", "-S", "--", "-", "A=1", "-0", "-v", "--unset=A", "--chdir", "-iu", "-uA", "-x=", "x=y", "-S'rm x'"},
	"nice":    {"-n", "5", "-5", "--adjustment=1", "--", "-n5", "--adjustment", "3", "-"},
	"timeout": {"5", "-s", "KILL", "-k", "1", "--foreground", "-v", "--kill-after=1", "--signal", "TERM", "1s", "--preserve-status", "--"},
	"xargs":   {"-0", "-n", "1", "-I", "{}", "-i", "-r", "-t", "-a", "/dev/null", "-d", ",", "-E", "x", "-e", "-L", "1", "-P", "1", "-s", "100", "--", "-x"},
	"command": {"-p", "-v", "-V", "--", "-pv"},
	"exec":    {"-a", "x", "-c", "-l", "--", "-cl", "-ax"},
	"stdbuf":  {"-o0", "-i", "L", "-e", "0", "--output=L", "--", "-oL"},
	"setsid":  {"-w", "-f", "-c", "--wait", "--"},
	"time":    {"-p", "-f", "%e", "-o", "/dev/null", "-v", "--", "-a", "-q"},
	"bash":    {"-c", "-e", "-x", "-o", "errexit", "+e", "-lc", "-ec", "--norc", "--", "-s", "+o", "-O", "extglob", "-ic"},
	"sh":      {"-c", "-e", "-x", "-o", "errexit", "+e", "-ec", "--", "-s", "-ce"},
	"find":    {".", "-maxdepth", "0", "-exec", "-execdir", ";", "+", "{}", "-name", "x", "-o", "-print"},
	"eval":    {"--", "'rm x'", "ls;", "echo"},
	"builtin": {"--", "command", "eval", "exec"},
	"su":      {"-c", "-", "root", "-l", "-m", "-s", "/bin/sh", "--command", "-lc", "-p", "--", "--command=rm"},
	"runuser": {"-u", "root", "--", "-c", "-l", "-s", "/bin/sh", "-", "-m"},
	"flock":   {"l", "-c", "-n", "-w", "1", "-s", "-x", "--", "-o"},
	"taskset": {"1", "-c", "0", "-a", "--"}, // not -p: it changes running processes
	"chrt":    {"-o", "0", "-b", "--", "-m"},
	"ionice":  {"-c", "3", "-n", "7", "-t", "-c3", "--"},
	"sg":      {"root", "-c", "-"},
}

// randomWrapped returns n lines of a wrapper, random words its options may
// meet, then rm or code that runs it: for differences in option parsing.
func randomWrapped(n int) []string {
	names := make([]string, 0, len(wrapperWords))
	for name := range wrapperWords {
		names = append(names, name)
	}
	slices.Sort(names)
	tails := []string{"rm x", "'rm x'", "'ls; rm x'", "x rm", "rm", "\\; rm x"}
	r := rand.New(rand.NewPCG(*bashSeed, 15))
	out := make([]string, n)
	for i := range out {
		name := names[r.IntN(len(names))]
		words := []string{name}
		for range r.IntN(5) {
			pool := wrapperWords[name]
			words = append(words, pool[r.IntN(len(pool))])
		}
		out[i] = strings.Join(append(words, tails[r.IntN(len(tails))]), " ")
	}
	return out
}

// TestAgainstBash runs generated lines with the real bash, with a stub rm
// first on PATH that leaves a mark, and checks that every line that made
// bash run rm is held: bash is the oracle for what a line runs. It also
// checks that the lines of notHeld run no rm.
func TestAgainstBash(t *testing.T) {
	bash := testenv.Require(t, "bash") // fails in CI, skips elsewhere
	if testing.Short() {
		t.Skip("runs bash for each of several hundred lines")
	}
	lines := append(bashLines(), randomLines(*bashRandom/2)...)
	lines = append(lines, randomWrapped(*bashRandom/2)...)
	ran := bashSandbox(t, bash)
	s := &Subject{}
	checked, scripts := 0, 0
	for _, line := range lines {
		if !ran(line) {
			continue
		}
		checked++
		d := rmPolicy.Decide(s, line)
		switch {
		case d.Action != Allow:
		case slices.ContainsFunc(d.Commands, readsScript):
			// sh rm runs the stub, a shell script, as a script: the
			// shell is the command (see the package documentation).
			scripts++
		default:
			t.Errorf("bash ran rm for %q, but it is allowed; commands %+v", line, d.Commands)
		}
	}
	for _, line := range notHeld {
		if !strings.Contains(line, "\x00") && ran(line) {
			t.Errorf("notHeld line %q runs rm", line)
		}
	}
	t.Logf("%d of %d lines ran rm in bash; all held but %d that run it as a shell script", checked, len(lines), scripts)
}

// bashLines returns every name spelling in every context, and every
// wrapper with every spelling and in every context.
func bashLines() []string {
	names := []string{"rm", `\rm`, `'rm'`, `"rm"`, `r''m`, `r\m`, `$'rm'`, `r$'\x6d'`, `{rm,x}`, `/x/../rm`, `./rm`}
	wrappers := []string{"", "env ", "env A=1 ", "env -i ", "nice -n 5 ", "nice -5 ", "nohup ", "timeout 5 ", "timeout -k 1 5 ",
		"command ", "command -p ", "exec ", "exec -a foo ", "eval ", "time ", "time -p ", "stdbuf -o0 ", "setsid -w ",
		"xargs ", "xargs -n 1 ", "env -S ", "builtin command ", "command eval ", "sh -c ", "bash -c ", "dash -c ",
		"find . -maxdepth 0 -exec ", "bash -e -c ", "bash -lc ", "su -c ", "runuser -u root -- ", "flock l ", "sg root "}
	contexts := []string{"%s x", "ls; %s x", "true && %s x", "false || %s x", "(%s x)", "{ %s x; }", "echo $(%s x)",
		"x=$(%s x)", "echo | %s x", "if true; then %s x; fi", "for i in 1; do %s x; done", "f() { %s x; }; f",
		"echo `%s x`", "cat <(%s x)", "case a in a) %s x;; esac", "! %s x", "%s x &", "a=( $(%s x) )", "echo ${u:-$(%s x)}",
		"(( $(%s x) ))", "[[ -n $(%s x) ]]", "while %s x; do break; done", "coproc %s x"}
	var lines []string
	for _, n := range names {
		for _, c := range contexts {
			lines = append(lines, fmt.Sprintf(c, n))
		}
	}
	for _, w := range wrappers {
		for _, n := range names {
			lines = append(lines, w+n+" x")
		}
		for _, c := range contexts[1:] {
			lines = append(lines, fmt.Sprintf(c, w+"rm"))
		}
		// Wrapped code as one quoted string.
		lines = append(lines, w+"'rm x'", w+`"ls; rm x"`)
	}
	return lines
}

// bashSandbox returns a function that runs a line with bash in a
// temporary directory, with a stub rm first on PATH (and in the working
// directory, for ./rm), and reports whether the stub ran.
func bashSandbox(t *testing.T, bash string) func(line string) bool {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	work := filepath.Join(dir, "work")
	mark := filepath.Join(dir, "mark")
	for _, d := range []string{bin, work, filepath.Join(work, "x")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub := "#!/bin/sh\necho ran >> " + mark + "\n"
	for _, p := range []string{filepath.Join(bin, "rm"), filepath.Join(work, "rm")} {
		if err := os.WriteFile(p, []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return func(line string) bool {
		os.Remove(mark)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bash, "-c", line)
		cmd.Dir = work
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + dir}
		// Wait waits for the pipe to close: background jobs (rm x &)
		// hold it until they end, so their mark is not left for the
		// next line.
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		cmd.WaitDelay = 10 * time.Second
		_ = cmd.Run()
		_, err := os.Stat(mark)
		return err == nil
	}
}

// readsScript reports whether c is a shell without -c that has an
// argument, or source or . with one: it runs a script file.
func readsScript(c Command) bool {
	if c.Name == "." || c.Name == "source" {
		return len(c.Args) > 0 // . rm sources the stub
	}
	if !shells[c.Name] {
		return false
	}
	for _, a := range c.Args {
		if len(a) > 1 && (a[0] == '-' || a[0] == '+') && a[1] != '-' {
			if strings.Contains(a, "c") {
				return false
			}
			continue
		}
		if a != "--" && a[0] != '-' {
			return true
		}
	}
	return false
}
