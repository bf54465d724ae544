package approval

import (
	"regexp"
	"strings"
	"testing"
)

// rmPolicy holds rm for approval and allows everything else.
var rmPolicy = Policy{Rules: []Rule{{
	Name: "rm-needs-approval", Match: Match{Commands: []string{"rm"}},
	Action: Approve, Approvers: []string{"ops"},
}}}

// held lines must come back Approve under rmPolicy, as exec commands and
// as lines typed in an interactive shell (the same function judges both).
var held = []string{
	"rm -rf /tmp/x",
	`\rm x`,
	`'rm' x`,
	`"r"m x`,
	`/bin/rm x`,
	`r\m x`,
	`$'rm' x`,
	`$'\x72m' x`,
	"ls; rm x",
	"ls && rm x",
	"ls || rm x",
	"ls | rm x",
	"ls |& rm x",
	"(rm x)",
	"{ rm x; }",
	"$(rm x)",
	"`rm x`",
	"echo $(rm x)",
	"echo \"$(rm x)\"",
	"x=$(rm x)",
	"x=`rm x` ls",
	"export x=$(rm x)",
	"local x=$(rm x)",
	"declare -a y=($(rm x))",
	"echo ${x:-$(rm x)}",
	"echo $(( $(rm x) + 1 ))",
	"(( $(rm x) ))",
	"[[ -n $(rm x) ]]",
	"sudo rm x",
	"sudo -u root rm x",
	"sudo -u root -g wheel -E -H -- rm x",
	"sudo --user=root rm x",
	"sudo FOO=1 rm x",
	"sudo sudo rm x",
	"doas rm x",
	"doas -u root rm x",
	"env rm x",
	"env A=1 rm x",
	"env -i -u HOME A=1 rm x",
	"env -S 'rm x'",
	"env --split-string='A=1 rm' x",
	"command rm x",
	"command -p rm x",
	"builtin rm",
	"exec rm x",
	"exec -a foo rm x",
	"nice -n 5 rm x",
	"nice -5 rm x",
	"nice --adjustment=5 rm x",
	"nohup rm x",
	"nohup rm x &",
	"timeout 5 rm x",
	"timeout -s KILL -k 1 5s rm x",
	"xargs rm < list",
	"find . | xargs rm",
	"find . | xargs -0 -n 1 -I{} rm {}",
	"find . -exec rm {} \\;",
	"find . -name x -execdir rm -f {} +",
	"time rm x",
	"time -p rm x",
	"/usr/bin/time -f %e rm x",
	"stdbuf -o0 rm x",
	"ionice -c3 rm x",
	"setsid rm x",
	"chroot / rm x",
	"busybox rm x",
	"watch rm x",
	"watch -n 1 'ls; rm x'",
	"sh -c 'rm x'",
	"bash -c \"rm x\"",
	"bash -lc 'ls; rm x'",
	"bash -e -c 'rm x'",
	"bash -o pipefail -c 'rm x'",
	"dash -c 'rm x'",
	"zsh -c 'rm x'",
	"ksh -c 'rm x'",
	"sh -c \"sh -c 'rm x'\"",
	"sudo sh -c 'rm x'",
	"su -c 'rm x'",
	"su - root -c 'rm x'",
	"su root -c 'rm x'",
	"su -lc 'rm x'",
	"runuser -u root -- rm x",
	"flock /tmp/l rm x",
	"flock /tmp/l -c 'rm x'",
	"bash <<< 'rm x'",
	"bash <<'EOF'\nrm x\nEOF",
	"eval rm x",
	"eval 'rm x'",
	"eval \"ls; rm x\"",
	"trap 'rm x' EXIT",
	"alias ls='rm'",
	"PROMPT_COMMAND='rm x'",
	"PS1='$(rm x)'",
	"x='a[$(rm x)]'; (( x ))",
	"BASH_CMDS[ls]=/bin/rm; ls x",
	"BASH_ALIASES[ls]='rm x'",
	"declare -A BASH_ALIASES=([ls]='rm x')",
	"hash -p /bin/rm ls; ls x",
	"hash -p \"$p\" ls",
	"source /dev/stdin <<< 'rm x'",
	". /dev/stdin <<'EOF'\nrm x\nEOF",
	"pkexec rm x",
	"pkexec --user root rm x",
	"taskset 1 rm x",
	"taskset -c 0 rm x",
	"chrt 10 rm x",
	"unbuffer rm x",
	"sg wheel 'rm x'",
	"sg wheel -c 'rm x'",
	"${ rm x; }",
	"builtin eval rm x",
	"busybox sh -c 'rm x'",
	"find . -exec sh -c 'rm \"$1\"' _ {} \\;",
	"xargs -I{} sh -c 'rm {}'",
	"sudo -i rm x",
	"command command rm x",
	"$x",
	"$x y",
	"$(echo rm) x",
	"\"$cmd\" x",
	"${cmd} x",
	"`echo rm` x",
	"r* x",
	"/bin/r? x",
	"{rm,x}",
	"{r\"m\",x}",
	"r[m] x",
	"/bin/r[m] x",
	"\\r\\m x",
	"\"/bin/rm\" x",
	"./rm x",
	"r\\\nm x",
	"ls; r\\\nm x",
	"rm\\\n x",
	"~/rm x",
	"@(rm) x",
	"sh -c \"$x\"",
	"eval \"$x\"",
	"sudo $opt rm x",
	"if true; then rm x; fi",
	"if rm x; then :; fi",
	"while rm x; do :; done",
	"until false; do rm x; done",
	"for f in a; do rm $f; done",
	"for ((i=0;i<1;i++)); do rm x; done",
	"case a in a) rm x;; esac",
	"f() { rm x; }; f",
	"function f { rm x; }",
	"rm x &",
	"! rm x",
	"coproc rm x",
	"coproc c { rm x; }",
	"cat <(rm x)",
	"cat > >(rm x)",
	"cat <<EOF\n$(rm x)\nEOF",
	"ls > $(rm x)",
	"echo 'unterminated",
	"echo \"unterminated",
	"ls \\",
	"if true; then",
	"ls &&",
	"cat <<EOF\nno end",
	"echo !!",
	"!rm",
	"!-2",
	"^ls^rm",
	"fc -s",
	"ls )",
	strings.Repeat("x", MaxLine+1),
	strings.Repeat("sh -c '", 1) + "sh -c \"eval eval eval eval eval eval eval eval eval rm\"'",
}

// notHeld lines mention rm but do not run it.
var notHeld = []string{
	"echo rm",
	"grep rm file",
	"man rm",
	"ls -l",
	"ls; pwd",
	"echo \"rm x\"",
	"printf '%s' rm",
	"echo 'rm -rf /'",
	"which rm",
	"type rm",
	"command -v rm",
	"rmdir x",
	"firm x",
	"ls # rm x",
	"",
	"   ",
	"x=1",
	"cd /tmp && ls",
	"echo hi!",
	"[ a != b ]",
	"git commit -m 'rm old files'",
	"sudo -l",
	"taskset -p 1234",
	"hash -r",
	"ionice -c3 -p 1234",
	"ls *.go",
}

func TestBypass(t *testing.T) {
	s := &Subject{Principals: []string{"alice"}, Target: "web1", Login: "root"}
	for _, line := range held {
		t.Run("held/"+name(line), func(t *testing.T) {
			t.Parallel()
			d := rmPolicy.Decide(s, line)
			if d.Action != Approve || d.Rule == nil || d.Rule.Name != "rm-needs-approval" {
				t.Errorf("Decide(%q) = %v (%s), want approve by rm-needs-approval; commands %+v", line, d.Action, d.Reason, d.Commands)
			}
			if d.Reason == "" {
				t.Errorf("Decide(%q) has no reason", line)
			}
		})
	}
	for _, line := range notHeld {
		t.Run("allowed/"+name(line), func(t *testing.T) {
			t.Parallel()
			if d := rmPolicy.Decide(s, line); d.Action != Allow {
				t.Errorf("Decide(%q) = %v (%s), want allow; commands %+v", line, d.Action, d.Reason, d.Commands)
			}
		})
	}
}

// name makes a subtest name of a line.
func name(line string) string {
	if len(line) > 40 {
		line = line[:40]
	}
	return regexp.MustCompile(`[^[:graph:]]`).ReplaceAllString(line, "_")
}
