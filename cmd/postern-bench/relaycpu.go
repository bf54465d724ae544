package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The jump path's proxy is the relay sshd: a listener that forks a
// process (and privilege-separated children) per connection. Its CPU is
// that of its whole process tree: each live process's user and system
// time plus, in its cutime and cstime, the time of the children it
// reaped, so that every process, live or ended, counts once.

// treeTicks returns the CPU time, in clock ticks, of the process root and
// its descendants, live and reaped.
func treeTicks(root int) float64 {
	type proc struct {
		ppid  int
		ticks float64
	}
	procs := make(map[int]proc)
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		// After the command name: state, ppid, ..., utime stime cutime
		// cstime are the 12th to 15th fields.
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 15 {
			continue
		}
		var pr proc
		pr.ppid, _ = strconv.Atoi(f[1])
		for _, s := range f[11:15] {
			v, _ := strconv.ParseFloat(s, 64)
			pr.ticks += v
		}
		procs[pid] = pr
	}
	inTree := func(pid int) bool {
		for range 64 { // bounded: a parent chain, not a cycle
			if pid == root {
				return true
			}
			p, ok := procs[pid]
			if !ok || p.ppid <= 1 {
				return false
			}
			pid = p.ppid
		}
		return false
	}
	var sum float64
	for pid, p := range procs {
		if inTree(pid) {
			sum += p.ticks
		}
	}
	return sum
}

// waitChildless waits, for at most timeout, until root has no children:
// the processes of a connection that ended have been reaped, so their
// time is in root's cutime and cstime.
func waitChildless(root int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && hasChildren(root) {
		time.Sleep(10 * time.Millisecond)
	}
}

// hasChildren reports whether a process has root as its parent.
func hasChildren(root int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(root) + "/task/" + strconv.Itoa(root) + "/children")
	if err == nil {
		return len(strings.TrimSpace(string(data))) > 0
	}
	return false
}
