package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The jump path's proxy is the relay sshd: a listener that forks a
// privileged monitor per connection, which forks the unprivileged process
// that forwards the bytes. When a connection ends, that process may
// outlive its monitor and be reaped by init, so its time never shows in
// the listener's cutime: the relay's CPU is therefore read by following
// every process of the tree while it lives, each one's own user and
// system time, sampled every treeSampleEvery; the time a process spends
// after its last sample (at most one interval) is missed.

// treeSampleEvery is how often a treeSampler reads the process tree.
const treeSampleEvery = 20 * time.Millisecond

// treeSampler follows the CPU time of root's process tree.
type treeSampler struct {
	root int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex      // guards base and last
	base map[int]float64 // each process's own ticks when first seen, 0 for one born after the start
	last map[int]float64 // each process's own ticks when last seen
}

// startTreeSampler begins following root's tree; Stop ends it.
func startTreeSampler(root int) *treeSampler {
	t := &treeSampler{root: root, stop: make(chan struct{}), done: make(chan struct{}), base: treeOwnTicks(root), last: map[int]float64{}}
	for pid, v := range t.base {
		t.last[pid] = v
	}
	go t.run()
	return t
}

func (t *treeSampler) run() {
	defer close(t.done)
	tick := time.NewTicker(treeSampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.sample()
		}
	}
}

func (t *treeSampler) sample() {
	now := treeOwnTicks(t.root)
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, v := range now {
		if _, ok := t.last[pid]; !ok {
			t.base[pid] = 0 // born since the start: all its time counts
		}
		t.last[pid] = max(t.last[pid], v)
	}
}

// Stop takes a last sample, stops following the tree and returns the
// ticks its processes used since the start.
func (t *treeSampler) Stop() float64 {
	close(t.stop)
	<-t.done
	t.sample()
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum float64
	for pid, v := range t.last {
		sum += v - t.base[pid]
	}
	return sum
}

// treeOwnTicks returns each live process of root's tree (root included)
// with its own user plus system time, in clock ticks.
func treeOwnTicks(root int) map[int]float64 {
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
		// After the command name: state, ppid, ..., utime and stime are
		// the 12th and 13th fields.
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		var pr proc
		pr.ppid, _ = strconv.Atoi(f[1])
		for _, s := range f[11:13] {
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
	out := make(map[int]float64)
	for pid, p := range procs {
		if inTree(pid) {
			out[pid] = p.ticks
		}
	}
	return out
}
