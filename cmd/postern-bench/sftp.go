package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Figure names of the sftp phase: a download of o.size bytes with the
// OpenSSH sftp client, and with scp in its legacy protocol (-O: `scp -f`
// on the remote side, which Postern audits apart from sftp). Modern scp
// speaks sftp and would measure the same thing twice.
const (
	figSFTP = "sftp_download"
	figSCP  = "scp_download"
)

// sftpPaths are the paths the sftp phase measures: the direct path for the
// ratios, and Postern with masking on (downloads are where issue 11 scans
// for card numbers), with recording off and on.
var sftpPaths = []string{pathDirect, pathNoRec, pathPostern}

// sftpFigures are the sftp phase's throughput figures, in table order.
var sftpFigures = []string{figSFTP, figSCP}

// remoteFileName is the file the sftp phase downloads, in a temporary
// directory of the target login.
const remoteFileName = "download.bin"

// remoteFile is a file of random bytes on the target: random, so that
// nothing along the way can compress it or find card numbers in it.
type remoteFile struct {
	dir    string // the temporary directory holding it
	path   string
	size   int64
	sha256 string // hex, as the target's sha256sum printed it
}

// sftp measures sftp and legacy scp downloads of one file of o.size random
// bytes on every path of sftpPaths, reps times each, the paths taking
// turns. Every download is checked for the file's size and, the first
// time on each path and program, for its SHA-256, so a transfer that broke
// off cannot count as fast; every connection is checked (ssh -v) to have
// used AES-GCM and the key exchange asked for, like checkPaths does.
func (e *env) sftp(ctx context.Context, reps int) ([]Figure, error) {
	f, err := e.makeRemoteFile(ctx)
	if err != nil {
		return nil, err
	}
	defer e.removeRemoteFile(f)
	// One untimed download first: the first 256 MiB this process's
	// downloads write costs the VM fresh page-cache pages, which would
	// fall on the direct path's first rep only.
	if _, err := e.download(ctx, figSFTP, pathDirect, f, 0, true); err != nil {
		return nil, fmt.Errorf("warm-up %s %s: %w", figSFTP, pathDirect, err)
	}
	e.progress("warm-up download done (untimed)")
	results := make(map[string][]float64) // figure + " " + path
	add := func(fig, path string, x float64) { results[fig+" "+path] = append(results[fig+" "+path], x) }
	hashed := make(map[string]bool) // figure + " " + path
	for rep := range reps {
		for _, path := range sftpPaths {
			for _, fig := range sftpFigures {
				pid := 0
				if b := e.bastions[e.bastionOf(e.aes, path)]; b != nil {
					pid = b.cmd.Process.Pid
				}
				t, err := e.download(ctx, fig, path, f, pid, !hashed[fig+" "+path])
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", fig, path, err)
				}
				hashed[fig+" "+path] = true
				add(fig, path, t.mbps)
				add(fig+cpuSuffix, path, t.machineNsPerByte)
				add(fig+busySuffix, path, t.busyPercent)
				if pid != 0 {
					add(fig+bastionCPUSuffix, path, t.bastionNsPerByte)
				}
				e.progress("%-13s %-13s rep %d/%d: %4.0f MB/s, machine %.0f%% busy, %.1f ns/B", path, fig, rep+1, reps, t.mbps, t.busyPercent, t.machineNsPerByte)
			}
		}
	}
	var figs []Figure
	for _, fig := range sftpFigures {
		for _, path := range sftpPaths {
			figs = append(figs, newFigure(fig, path, cipherAES, 0, "MB/s", "higher", results[fig+" "+path], 0))
			figs = append(figs, newFigure(fig+cpuSuffix, path, cipherAES, 0, "ns/B", "lower", results[fig+cpuSuffix+" "+path], 0))
			figs = append(figs, newFigure(fig+busySuffix, path, cipherAES, 0, "%", "", results[fig+busySuffix+" "+path], 0))
			if xs := results[fig+bastionCPUSuffix+" "+path]; len(xs) > 0 {
				figs = append(figs, newFigure(fig+bastionCPUSuffix, path, cipherAES, 0, "ns/B", "lower", xs, 0))
			}
		}
	}
	return figs, nil
}

// makeRemoteFile has the target login write o.size random bytes into a
// new temporary directory on the target and hash them there.
func (e *env) makeRemoteFile(ctx context.Context) (remoteFile, error) {
	f := remoteFile{size: e.o.size}
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(f.size/(2<<20))*time.Second)
	defer cancel()
	script := fmt.Sprintf(`umask 077 && d=$(mktemp -d /tmp/postern-bench-sftp.XXXXXXXX) && echo "$d" && head -c %d /dev/urandom >"$d/%s" && sha256sum "$d/%s"`,
		f.size, remoteFileName, remoteFileName)
	var stderr cappedBuffer
	cmd := e.sshCmd(ctx, e.aes.file, pathDirect, script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	reap(cmd)
	// The directory line comes first, so that a failure after mktemp
	// still leaves something to remove.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if d := strings.TrimSpace(lines[0]); strings.HasPrefix(d, "/tmp/postern-bench-sftp.") && !strings.ContainsAny(d, " \t") {
		f.dir = d
		f.path = d + "/" + remoteFileName
	}
	if err != nil {
		e.removeRemoteFile(f)
		return remoteFile{}, fmt.Errorf("make the sftp file on the target: %w\n%s", err, stderr.Bytes())
	}
	if f.dir == "" || len(lines) != 2 {
		e.removeRemoteFile(f)
		return remoteFile{}, fmt.Errorf("make the sftp file on the target: unexpected output %q", out)
	}
	sum, name, _ := strings.Cut(lines[1], "  ")
	if len(sum) != 2*sha256.Size || name != f.path {
		e.removeRemoteFile(f)
		return remoteFile{}, fmt.Errorf("make the sftp file on the target: unexpected sha256sum output %q", lines[1])
	}
	f.sha256 = sum
	e.progress("made %s of random bytes on the target: %s", sizeString(f.size), f.path)
	return f, nil
}

// removeRemoteFile removes f's directory as the target login. The target
// is always on this machine (loopback), so if ssh fails, say because the
// run was interrupted, the directory is removed here instead.
func (e *env) removeRemoteFile(f remoteFile) {
	if f.dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.sshCmd(ctx, e.aes.file, pathDirect, "rm -rf -- "+f.dir)
	err := cmd.Run()
	reap(cmd)
	if err != nil {
		os.RemoveAll(f.dir)
	}
}

// download fetches f over path with the program fig names (sftp or scp
// -O) into a local file, which it removes afterwards, and returns the
// throughput. The clock starts once the connection is up and the transfer
// is about to begin: when sftp echoes its batch command ("sftp> get ..."
// on stdout; it reads the batch only after connecting and opening the
// sftp session), or when ssh -v logs that it sends scp's remote command.
// It stops when the client exits. The download must have f's size and, if
// hash, its SHA-256 (computed after the clock stopped); the connection
// must have used AES-GCM and o.kex.
func (e *env) download(ctx context.Context, fig, path string, f remoteFile, pid int, hash bool) (transferResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(f.size/(2<<20))*time.Second)
	defer cancel()
	local := filepath.Join(e.dir, "download-"+path+".bin")
	os.Remove(local)
	defer os.Remove(local)

	// log collects the client's ssh -v output (and sftp's echo), which
	// the marker is read from, for the cipher check and error messages.
	var log cappedBuffer
	var cmd *exec.Cmd
	var isMarker func(line string) bool
	var markers io.Reader
	var err error
	switch fig {
	case figSFTP:
		batch := filepath.Join(e.dir, "sftp-batch")
		if err := os.WriteFile(batch, []byte(fmt.Sprintf("get \"%s\" \"%s\"\n", f.path, local)), 0o644); err != nil {
			return transferResult{}, err
		}
		cmd = clientCmd(ctx, e.sftpBin, "-F", e.aes.file, "-v", "-b", batch, path)
		cmd.Stderr = &log
		markers, err = cmd.StdoutPipe()
		isMarker = func(line string) bool { return strings.HasPrefix(line, "sftp> get ") }
	case figSCP:
		cmd = clientCmd(ctx, e.scpBin, "-O", "-F", e.aes.file, "-v", path+":"+f.path, local)
		cmd.Stdout = e.devNull
		markers, err = cmd.StderrPipe()
		isMarker = func(line string) bool { return strings.Contains(line, "debug1: Sending command: scp ") }
	default:
		return transferResult{}, fmt.Errorf("unknown download figure %q", fig)
	}
	if err != nil {
		return transferResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return transferResult{}, err
	}
	defer reap(cmd)
	var start time.Time
	var cpu0 cpuTicks
	br := bufio.NewReader(markers)
	for {
		line, err := br.ReadString('\n')
		if start.IsZero() && isMarker(line) {
			start = time.Now()
			cpu0 = readCPUTicks(pid)
		}
		log.WriteString(line)
		if err != nil {
			break // the client closed its output: it is exiting
		}
	}
	err = cmd.Wait()
	end := time.Now()
	cpu1 := readCPUTicks(pid)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return transferResult{}, fmt.Errorf("timed out\n%s", log.Bytes())
	}
	if ctx.Err() != nil {
		return transferResult{}, ctx.Err()
	}
	if err != nil || start.IsZero() {
		return transferResult{}, fmt.Errorf("%s: %v (transfer started: %v)\n%s", filepath.Base(cmd.Path), err, !start.IsZero(), log.Bytes())
	}
	hops := parseHops(log.String())
	if len(hops) != 1 {
		return transferResult{}, fmt.Errorf("ssh -v: saw %d key exchanges, want 1:\n%s", len(hops), log.Bytes())
	}
	if err := checkHops(hops, cipherAES, e.o.kex); err != nil {
		return transferResult{}, err
	}
	if err := checkDownload(local, f, hash); err != nil {
		return transferResult{}, err
	}
	return newTransferResult(f.size, end.Sub(start), cpu0, cpu1, pid != 0), nil
}

// checkDownload checks that the file local has f's size and, if hash, its
// SHA-256.
func checkDownload(local string, f remoteFile, hash bool) error {
	fi, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("downloaded file: %w", err)
	}
	if fi.Size() != f.size {
		return fmt.Errorf("downloaded %d bytes, want %d", fi.Size(), f.size)
	}
	if !hash {
		return nil
	}
	sum, err := fileSHA256(local)
	if err != nil {
		return err
	}
	if sum != f.sha256 {
		return fmt.Errorf("downloaded file has SHA-256 %s, the target's has %s", sum, f.sha256)
	}
	return nil
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
