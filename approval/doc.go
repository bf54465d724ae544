// Package approval decides which command lines the bastion runs, holds for
// a human's approval, or refuses. It is pure: it parses and judges lines;
// holding them, asking approvers and recording decisions belong to its
// callers.
//
// # Rules
//
// A Policy is an ordered list of rules. A rule has a name, a Match (which
// commands), a Scope (which connections), and an Action: Allow, Approve
// (hold until Required distinct people of the Approvers groups approve,
// refused after Timeout) or Deny. Check validates a policy and names the
// rule in every error.
//
// A Match is one of:
//
//   - Commands: base names (rm, not /bin/rm), compared exactly; with Args,
//     a regular expression (Go RE2, unanchored) that must also match the
//     arguments joined by single spaces after quote removal.
//   - Regex: a regular expression (Go RE2, unanchored) on a command's
//     normalised text (below).
//   - neither: every command, including the ones that cannot be judged.
//
// A Scope selects connections by target name (path.Match globs; one must
// match), target labels (all must be equal), requesters (certificate
// principals, or group:NAME; one must match) and logins (one must equal).
// An empty field selects everything, so the zero Scope is every
// connection.
//
// # Decisions
//
// Decide splits a line into its commands (below). Each command gets the
// first rule, in policy order, that is in scope and matches it; a command
// no rule matches is allowed. The line gets the most restrictive action of
// its commands: Deny over Approve over Allow. So a line is allowed only
// when every command in it is allowed, and "ls; rm x" is held when rm is.
// The Verdict names the rule behind its action (the first command's, among
// those with that action), says why, and lists the commands with the rule
// each got. A line with no commands (empty, a comment, x=1) is allowed.
//
// An allowlist posture is two rules: allow the harmless commands (ls, cat,
// …), then approve with an empty Match. Every other command, and every
// part of a line that cannot be judged, is then held.
//
// # Commands of a line
//
// The line is parsed as bash (mvdan.cc/sh/v3/syntax). Every simple command
// is found wherever it stands: in lists (; && || &), pipelines, subshells,
// { } blocks, $(…) and backquotes, <(…) and >(…), if/while/until/for/case
// bodies and conditions, function bodies, coproc, arithmetic, [[ ]],
// assignment values (x=$(rm y)), declare/export/local/readonly values,
// parameter expansions (${x:-$(rm y)}), redirection targets and unquoted
// here-documents. declare, export, local, readonly, typeset and let count
// as commands of that name.
//
// A command's name is its first word after quote removal ('r'm, "rm", \rm
// and r\m are rm), cut to its base name (/bin/rm is rm). Its arguments are
// the other words after quote removal; a word with an expansion is kept as
// written and makes the arguments unknown. A rule with Args matches a
// command with unknown arguments if it denies or approves, and does not if
// it allows: it fails closed.
//
// The normalised text of a command is its base name and arguments joined
// by single spaces: "r"m  -rf '/tmp/x' is "rm -rf /tmp/x". Regex rules see
// each command's text separately, so chaining cannot hide a command from
// them; they also see an expansion as written ($x), and cannot see through
// it: prefer Commands and Args.
//
// # Wrappers
//
// A wrapper counts as a command itself (rules can match sudo) and so does
// the command it runs, after the wrapper's options:
//
//   - sudo (options, then words with a =, which set variables; -s or -i
//     alone is the command sh, -e is sudoedit; -h takes an attached host,
//     or the next word as the host unless it starts with -, as sudo
//     does), doas (-s alone is sh)
//   - env (options, then words with a =; the string of -S is split into
//     words that take its place, options included, as GNU env does)
//   - command (not with -v or -V, which only look the name up), builtin,
//     exec, nice, nohup, setsid, timeout (and its duration), time (the
//     keyword, with -p and --, and /usr/bin/time), stdbuf, ionice (not
//     with -p, -P or -u), taskset MASK and chrt PRIORITY (not with -p),
//     pkexec, unbuffer, catchsegv, chroot DIR (alone, the command sh),
//     busybox
//   - xargs (its command gets more arguments from its input, so its
//     arguments are unknown; with no command, echo)
//   - find -exec, -execdir, -ok and -okdir: the command up to ; or +, its
//     arguments unknown
//   - flock FILE COMMAND, and flock FILE -c CODE
//   - runuser -u USER COMMAND (without -c)
//
// These run a string as shell code, which is parsed in turn, up to 8
// levels deep: sh, bash, dash, zsh, ksh, mksh, ash, rbash, yash, posh,
// csh and tcsh with -c or +c (in any option cluster: -lc, -ec; the value
// of -o, and of bash's -O, --rcfile and --init-file, ksh's and mksh's -T,
// zsh's --emulate and yash's --profile and --rcfile, is the next word, and
// a cluster goes on after it: bash -oc pipefail CODE; a lone - ends their
// options, like --); fish with -c, -C, --command or --init-command (each
// one's value is code, attached, after = or as the next word; a long
// option may be any unique prefix, as getopt_long allows); yash's
// --cmdline, abbreviated or not (--cmd, -o cmdline), is its -c; eval (its
// arguments joined by spaces); su, runuser and script with -c or
// --command (options may stand anywhere before --, and the last -c wins;
// without one, su and runuser pass the words after the user to the user's
// shell: the command sh, or the shell -s names, with those words); sg [-]
// GROUP [-c] CODE (its
// words joined by spaces); watch (its arguments joined by spaces;
// with -x a command); trap CODE; alias NAME=CODE; and values assigned to
// PROMPT_COMMAND, BASH_ALIASES and BASH_CMDS (whose values are the paths
// names run: BASH_CMDS[ls]=/bin/rm is the command rm). hash -p PATH NAME
// is the command hash and the base name of PATH. A variable that env or
// sudo set and bash imports as a function (BASH_FUNC_ls%%='() { … }') is
// parsed as that function's code. The callbacks of
// mapfile and readarray -C, complete and compgen -C, and bind -x are
// parsed as shell code too.
//
// A quoted string that holds $( or a backquote is parsed as shell code too,
// from its start or else from each substitution in it: it may be run later
// (eval "$x", PS1, or bash's arithmetic on a[$(cmd)]). The commands found
// count, so echo '$(rm x)' is held under a rule on rm; what cannot be
// judged in it does not (the string is text until something runs it, and
// that is judged then).
//
// A shell without -c runs a script file or reads commands from its input:
// that cannot be judged from the line, so the shell itself is the command
// (list the shells in a rule to hold echo rm x | sh, bash script.sh or
// sh < file). A here-document or here-string on the input of a shell, of
// source or of . is parsed as the code it is; otherwise source and . are
// commands like any other.
//
// Redirections are not commands: > /etc/passwd is matched by no rule,
// though the commands in its words ($(…)) are found.
//
// # Lines that cannot be judged
//
// These parts of a line cannot be judged: they could be any command. Such
// a part gets the first rule in scope that matches every command; failing
// that, it is held by the first Approve rule in scope, or failing that
// refused by the first Deny rule; with neither it is allowed. Allow rules
// with Commands or Regex never match it. The reason says why:
//
//   - a command name that is not literal: $x, "$x", ${x}, $(…), `…`, a glob
//     (r*, r[m]), a brace expansion ({rm,x}), a leading ~ or = (zsh's =rm
//     is the path of rm), $'…' with an escape, $"…", an extended glob
//   - a non-literal word where a wrapper's options or command stand (sudo
//     $opt rm, sudo "$opt" rm: it could be an option), or a word that may
//     become several (an unquoted $x, a glob, a brace expansion, "$@") as
//     an option's value or before the command (nice -n $n ls), since the
//     words after it would move
//   - a shell without -c whose options stopped at a word (the value of an
//     option not known above, or a script) after at least one option,
//     when a later word is an option cluster with c in it (sh -Q x -c
//     CODE): the -c may be the shell's; a fish long option that is not
//     known or is ambiguous
//   - non-literal sh -c, eval, su -c, trap, alias or PROMPT_COMMAND code,
//     a non-literal find argument (it could be -exec), an env -S string
//     with a $, a comment or an unknown escape
//   - arithmetic ((( )), $(( )), let, for ((…)), [[ -eq ]], array
//     subscripts, the [index]= of a compound assignment a=(…), a+=(…) or
//     declare -a a=(…) (not in a declare -A, where it is a string),
//     ${x:n}) that reads a variable the line has not set to a literal
//     number before (x=5; echo $((x+1)) is fine), or holds a command
//     substitution: bash evaluates the variable's value (or the output)
//     as an expression in turn, and a[$(cmd)] in it runs cmd, so
//     c='a[$(rm x)]' assembled on earlier lines and (( c )) would run rm
//   - a value assigned to an integer variable that is not a literal
//     number (one where every name-like run of characters starts with a
//     digit, as in 5, -3, 0x1f or 2#101: no variable, no $, ` or [).
//     Integer variables are those declared with -i by declare, typeset or
//     local anywhere on the line, nested code included (bash evaluates
//     what a function assigns when it runs, not where it is written), a
//     nameref declared on the line that may lead to one, and OPTIND,
//     RANDOM, SRANDOM, HISTCMD, SECONDS, BASHPID and MAILCHECK, which
//     bash 5.2 evaluates too. Values are those of x=, x+=, x[i]=, each
//     element of x=(…), declare and the other declaration builtins (also
//     run as builtin declare …), ${x:=…} and ${x=…}, for and select
//     loops, and, never known, read (REPLY without a name), printf -v,
//     mapfile, readarray, getopts (its variable and OPTARG) and select
//     (REPLY). A non-literal word given to a
//     declaration builtin run as a command (builtin declare $a) is
//     unjudged too
//   - an indirect expansion ${!r} (not ${!prefix*} or ${!a[@]}), declare
//     -n with a non-literal name, and a non-literal variable name given to
//     read, printf -v, unset, test -v, [[ -v ]] or declare: the name may
//     carry a subscript, evaluated the same way
//   - prompt expansion ${x@P}, a non-literal value for PS0 to PS4, and a
//     non-literal complete or compgen -W word list: bash expands these,
//     command substitutions included
//   - a line that does not parse, or is unfinished: an open quote, a
//     trailing backslash, an open if/while/for, an unterminated
//     here-document, a trailing && or |
//   - history expansion in interactive bash: a ! followed by anything but
//     a space, =, ( or " outside single quotes, or a line starting with ^
//     (quick substitution); fc without -l, which reruns earlier lines
//   - a NUL byte (bash -c would stop there; the parser reads on)
//   - more than MaxLine (64 KiB) bytes, shell code nested more than 8
//     deep, more than 1 MiB of shell code parsed in all, more than 1024
//     commands, or more than 32 wrappers around one command
//
// # What rules cannot see
//
// Matching is by name on one line. It does not see what a command does
// with its input or files (python -c, perl -e, awk's system(), vi's :!,
// git's aliases, make, a script, find -delete, ssh HOST CMD), nor state
// left behind by earlier lines or by the target's own shell startup files:
// a PATH entry, an alias or function (their definitions are judged when
// typed on a line), BASH_ENV or ENV naming a file a shell reads first,
// SHELL naming the program that sudo -s, chroot, flock -c or script run
// (sudo -s is the command sh whatever SHELL holds),
// enable -f, a copy of rm under another name, or a variable assembled in
// pieces and evaluated later (eval "$x" and arithmetic are held; a
// variable declared -i, or a nameref, on an earlier line and assigned on
// this one is not). Wrappers not listed
// above (strace, nsenter, unshare, systemd-run, tmux, screen, at, …) are
// commands like any other: their command is not found. zsh's r reruns
// the last line. Every line is parsed as bash: on a target whose shell is
// zsh, fish or csh, their own expansions are not modelled (zsh's glob
// qualifiers run code: *(e:'rm x':)). Rules on interpreters and shells (python, perl, sh, bash,
// …) and an allowlist posture narrow this; recordings show what ran.
//
// # Terminal lines
//
// A Tracker finds the line an interactive shell is about to run when the
// user presses Enter, however it was produced (typed, recalled with Up or
// Ctrl-R, completed with Tab, edited). It is fed the terminal's output as
// the user sees it, through a terminal emulator (charmbracelet/x/vt), and
// the keys the user sends. At a line's first key, the text before the
// cursor is the prompt (once the program printed something after the line
// before ended: until then the screen shows that line, and the prompt is
// not known); at Enter, the screen's view of the line is the
// logical line at the cursor (soft-wrapped rows joined) after that prompt,
// or after any "': " of readline's reverse-i-search display. The keys'
// view replays them as a line editor would and is exact while only plain
// typing, Backspace, Ctrl-U, Ctrl-W and bracketed paste were used (and
// erasing found something typed to erase). Line waits, at most MaxSettle,
// until the screen shows the keys typed (or, when it cannot compare, until
// output was quiet for a few milliseconds and the screen shows the keys
// typed since the last editing key). DecideLine judges every view that
// can be trusted and keeps the most restrictive verdict; when none can be
// (the prompt is gone and an editing key was used), the line cannot be
// judged. A line typed blind (echo off: a password prompt, or stty -echo)
// is judged from its keys, by rules that name commands only. An unfinished
// line (Unfinished) passes after a plain Enter, to be judged whole with
// the lines that finish it. Keys for a full-screen program (the alternate
// screen) are not read. The screen of a terminal larger than MaxCols ×
// MaxRows is not read: its program must be told at most that size.
//
// A line ends at a key that may run it (Enter): a plain CR or LF; Ctrl-O
// and Ctrl-D; CR or LF after Esc, inside an escape sequence, after Ctrl-X
// or after a quoted insert (Ctrl-V, Ctrl-Q); Ctrl-X Ctrl-E and Ctrl-X e,
// which hand the line to an editor or a keyboard macro, so that what runs
// cannot be judged; and a newline in a bracketed paste (EnterPaste), which
// readline keeps in the line and a program that does not know bracketed
// paste runs: the line so far is judged there and goes on. After a line
// the shell may still have (Unsure: it was refused and the shell was sent
// Ctrl-C, which it may read as a key; Ctrl-C; a key that may not have run
// it; the alternate screen coming on while it was typed) the next lines
// are read from the screen, after their prompt and after the earlier one,
// until a plain Enter passes (Reset).
//
// What the screen shows is what the target printed, and the line editor
// is the user's: a background job writing to the terminal, or keys typed
// ahead while a command runs (which the terminal driver echoes, and
// readline reads later), can make the screen show another line than the
// one the shell runs, and key bindings (bind, inputrc, vi mode's v) can
// make any key run a line. The keys' view only catches the first when
// they were typed plainly, and nothing here catches the second.
//
// # Access
//
// A rule with Access AccessRequest holds connections, not commands: a
// Subject in its scope needs an approved grant to connect (NeedsGrant),
// approved as the rule's Approvers, Required and Timeout say. Such a rule
// takes action Approve and no Match; Decide skips it.
//
// # SQL rules
//
// A rule whose Match has SQL patterns judges the statements of postgres
// forwards (DecideSQL), never command lines; rules without them never
// judge statements. SQLCommands splits a SQL text into statements with a
// lexer that knows comments, literals and quoted identifiers, and each
// statement into the commands that may run: itself and the statements it
// carries (in parentheses, after WITH, EXPLAIN, PREPARE … AS, DECLARE …
// FOR, CREATE RULE … DO). A pattern matches a command's normalised text
// case-insensitively, whole or as its first words, * matching any run.
// What cannot be read (a DO block, a function's or procedure's body, an
// unterminated literal) fails closed as an unjudged command does.
// DecideSQLPrepared also judges the protocol-prepared statements a text's
// EXECUTEs run (SQLExecutes). What existing functions, procedures and
// triggers run is not seen.
package approval
