// Package benchdata makes the inputs the masker's benchmarks share: the
// Go benchmarks in package mask and postern-bench's masker figure mask the
// same bytes, so that their figures compare.
package benchdata

import (
	"math/rand/v2"
	"strconv"
)

// TerminalText returns at least size bytes of terminal output: log lines,
// psql tables, colored ls listings, prose and prompts, with a PAN in
// about one line in 2000. The same size gives the same bytes.
func TerminalText(size int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	num := func(n int) string { return strconv.Itoa(rng.IntN(n)) }
	words := []string{"session", "upstream", "approval", "record", "channel", "request", "granted", "closed", "timeout", "user", "db01", "web02"}
	word := func() string { return words[rng.IntN(len(words))] }
	lines := make([]string, 0, 4096)
	for range 4096 {
		var l string
		switch rng.IntN(5) {
		case 0:
			l = "2024-06-" + num(30) + "T10:" + num(60) + ":" + num(60) + "." + num(1000) + "Z INFO  http: GET /api/v1/users/" + num(100000) + " 200 " + num(500) + "ms bytes=" + num(1<<20) + " ua=\"Mozilla/5.0 (X11; Linux x86_64)\" " + word() + "\n"
		case 1:
			l = " " + num(100000) + " | " + word() + "_" + word() + "          | " + num(10000) + "." + num(100) + " | 2024-06-11 10:20:30.123456+00 | t\n"
		case 2:
			l = "-rw-r--r-- 1 postgres postgres " + num(1<<30) + " Jun " + num(30) + " 10:" + num(60) + " \x1b[01;34m" + word() + "\x1b[0m\n"
		case 3:
			l = "The " + word() + " was " + word() + " by the bastion after the " + word() + " reached its limit; see the " + word() + " log for details.\n"
		case 4:
			l = "\x1b[32m" + word() + "\x1b[0m@\x1b[34m" + word() + "\x1b[0m:~$ systemctl status " + word() + ".service\r\n"
		}
		lines = append(lines, l)
	}
	b := make([]byte, 0, size+4096)
	for len(b) < size {
		b = append(b, lines[rng.IntN(len(lines))]...)
		if rng.IntN(2000) == 0 {
			b = append(b, "payment card=4111111111111111 ok\n"...)
		}
	}
	return b
}
