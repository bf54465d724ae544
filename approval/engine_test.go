package approval

import "testing"

// Forms next to the attack5 bypasses: each runs rm (or may) in bash 5.2
// or the shell named, so each must be held.
func TestIntegerAndShellOptionForms(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"bash -oc pipefail 'rm x'",
		"bash +c 'rm x'",
		"bash -Tc 'rm x'",
		"fish -c ls -c 'rm x'",
		"fish --comm='rm x'",
		"fish -crm",
		"fish --init 'rm x'",
		"sh -x script -c 'rm x'",
		"sudo -hlocalhost rm x",
		`declare -i x; for x in $(cat f); do :; done`,
		`declare -i x; select x in "$v"; do break; done`,
		`declare -i x; : ${x:=$(cat f)}`,
		`declare -i x; declare -n r=x; r=$(cat f)`,
		`declare -i x; eval 'x=$(cat f)'`,
		`f() { x=$(cat f); }; declare -i x; f`,
		`declare -ia x; mapfile x < f`,
		`declare -i OPTARG; getopts a: o`,
		`declare -i x; x=y`,
		`builtin declare -i x=$(cat f)`,
		`for OPTIND in $(cat f); do :; done`,
		`SECONDS=(a[$(printf x)])`,
		`MAILCHECK=$(cat f)`,
		`(( x = $(cat f) ))`,
		`m=([$(cat f)]=1)`,
		`declare -i REPLY; read`,
		`declare -i REPLY; select x in a; do break; done`,
		"yash --cmdline 'rm x'",
		"yash --cmd 'rm x'",
		"yash -o cmdline 'rm x'",
		"yash --prof f -c 'rm x'",
		`declare -i "x"; x=$(cat f)`,
		`declare "-i" x; x=$(cat f)`,
		`declare -i x\=1; x=$(cat f)`,
		`declare 'OPTIND=y'`,
		`declare "-n" r=$a$b; echo $r`,
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
	for _, line := range []string{
		"declare -i n=0x1f m=2#101 k=-3",
		"declare -i n=$((5+1))",
		"declare -ai a=(1 2)",
		"declare -A m=([$k]=1)",
		`declare "-A" m=([k]=1)`,
		"declare -i 'n=5'",
		"a=([0]=x [1]=y)",
		"OPTIND=1",
		"read -r OPTARG",
		"for i in $(ls); do echo $i; done",
		"bash -o pipefail -c ls",
		"bash script.sh -c x",
		"fish -ic ls",
		"sudo -h",
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Allow {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}
