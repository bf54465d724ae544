package demotarget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// maxEnv caps the LANG/LC_* variables passed from the client.
const maxEnv = 32

// ptyDrain is how long output is still read from a pty after the shell
// exits: what the shell wrote is already buffered, but a background job
// may hold the pty open indefinitely.
const ptyDrain = 500 * time.Millisecond

// handleChannel runs gliderlabs' session handler for a "session" channel,
// counted in s.wg, on a wrapped channel (see sessionChannel).
func (s *Server) handleChannel(srv *gliderssh.Server, conn *ssh.ServerConn, nc ssh.NewChannel, ctx gliderssh.Context) {
	if !s.track(nil) {
		nc.Reject(ssh.ResourceShortage, "server is closing")
		return
	}
	defer s.wg.Done()
	gliderssh.DefaultSessionHandler(srv, conn, sessionChannel{NewChannel: nc, s: s}, ctx)
}

// sessionChannel changes what gliderlabs gets on Accept: requests it would
// wrongly grant are refused first, and the channel is a rawChannel.
type sessionChannel struct {
	ssh.NewChannel
	s *Server
}

func (c sessionChannel) Accept() (ssh.Channel, <-chan *ssh.Request, error) {
	ch, reqs, err := c.NewChannel.Accept()
	if err != nil {
		return nil, nil, err
	}
	out := make(chan *ssh.Request)
	// handleChannel holds a count on wg, so Go may add to it.
	c.s.wg.Go(func() { filterRequests(reqs, out) })
	return rawChannel{ch}, out, nil
}

// filterRequests passes channel requests on to gliderlabs, except agent
// forwarding (auth-agent-req@openssh.com, which gliderlabs always grants)
// and X11 forwarding (RFC 4254 section 6.3), which are refused. It ends when the channel's requests
// do, that is when the channel or connection closes.
func filterRequests(in <-chan *ssh.Request, out chan<- *ssh.Request) {
	defer close(out)
	for r := range in {
		switch r.Type {
		case "auth-agent-req@openssh.com", "x11-req":
			r.Reply(false, nil)
		default:
			out <- r
		}
	}
}

// rawChannel lets the handler write stdout unaltered. gliderlabs'
// Session.Write turns "\n" into "\r\n" whenever a pty was requested; a real
// pty already does that (ONLCR) when the program wants it, and full-screen
// programs rely on a bare "\n". Stderr is passed through gliderlabs
// untouched, so it carries the raw channel out (see stdoutOf).
type rawChannel struct{ ssh.Channel }

func (c rawChannel) Stderr() io.ReadWriter { return stderrStream{c.Channel.Stderr(), c.Channel} }

type stderrStream struct {
	io.ReadWriter
	stdout io.Writer
}

// stdoutOf returns the session's unaltered stdout.
func stdoutOf(sess gliderssh.Session) io.Writer {
	if st, ok := sess.Stderr().(stderrStream); ok {
		return st.stdout
	}
	return sess
}

// status is how a session's command ended.
type status struct {
	code   int
	signal string // RFC 4254 section 6.10 name, if killed by a signal
	core   bool
}

// handleSession runs a shell or exec request.
func (s *Server) handleSession(sess gliderssh.Session) {
	if !s.track(nil) {
		return
	}
	defer s.wg.Done()
	log := s.connLog(sess.Context()).With("session", s.nextSession.Add(1), "user", sess.User())
	ptyReq, winch, isPty := sess.Pty()
	kind := "exec"
	if sess.RawCommand() == "" {
		kind = "shell"
	}
	log.Info("session start", "remote", sess.RemoteAddr().String(), "kind", kind, "pty", isPty)

	term := ""
	if isPty {
		term = ptyReq.Term
	}
	cmd := s.command(sess, term)
	var st status
	var err error
	if isPty {
		st, err = s.runPty(sess, cmd, ptyReq.Window, winch)
	} else {
		st, err = s.runPipes(sess, cmd)
	}
	if err != nil {
		log.Error("session dropped", "err", err)
		fmt.Fprint(sess.Stderr(), "postern demo target: could not start the shell\r\n")
		st = status{code: 1}
	}
	finish(sess, st)
	log.Info("session end", "exit_status", st.code, "exit_signal", st.signal)
}

// handleSubsystem refuses every subsystem (sftp included) with a message on
// stderr and exit status 1, which sftp and scp show to the user.
func (s *Server) handleSubsystem(sess gliderssh.Session) {
	if !s.track(nil) {
		return
	}
	defer s.wg.Done()
	name := sess.Subsystem()
	s.connLog(sess.Context()).Info("subsystem refused", "user", sess.User(), "subsystem", name)
	msg := fmt.Sprintf("subsystem %q is not available on the demo target\n", name)
	if name == "sftp" {
		msg = "sftp is not available on the demo target\n"
	}
	io.WriteString(sess.Stderr(), msg)
	finish(sess, status{code: 1})
}

// finish ends the session channel in the order RFC 4254 sections 5.3 and
// 6.10 allow and OpenSSH uses: exit-status (or exit-signal), EOF,
// CLOSE. Session.Exit is not used because it skips EOF; the Exit(0) that
// gliderlabs calls after the handler returns finds the channel closed and
// sends nothing.
func finish(sess gliderssh.Session, st status) {
	if st.signal != "" {
		sess.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: st.signal, CoreDumped: st.core}))
	} else {
		sess.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(st.code)}))
	}
	sess.CloseWrite()
	sess.Close()
}

// command builds the shell command for the session: "Shell -c CMD" for
// exec, or Shell as a login shell (argv[0] "-sh", as sshd does) for shell.
func (s *Server) command(sess gliderssh.Session, term string) *exec.Cmd {
	name := filepath.Base(s.shell)
	args := []string{"-" + name}
	if raw := sess.RawCommand(); raw != "" {
		args = []string{name, "-c", raw}
	}
	env := []string{
		"HOME=" + s.home,
		"USER=" + sess.User(),
		"LOGNAME=" + sess.User(),
		"PATH=" + s.path,
		"SHELL=" + s.shell,
	}
	if term != "" {
		env = append(env, "TERM="+term)
	}
	n := 0
	for _, kv := range sess.Environ() {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || (k != "LANG" && !strings.HasPrefix(k, "LC_")) || strings.ContainsRune(kv, 0) {
			continue
		}
		if n++; n > maxEnv {
			break
		}
		env = append(env, kv)
	}
	return &exec.Cmd{Path: s.shell, Args: args, Env: env, Dir: s.home}
}

// runPipes runs cmd without a pty, its stdin, stdout and stderr wired to
// the channel.
func (s *Server) runPipes(sess gliderssh.Session, cmd *exec.Cmd) (status, error) {
	var parent, child []*os.File
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(parent)
			closeAll(child)
			return status{}, fmt.Errorf("create pipe: %w", err)
		}
		parent, child = append(parent, r), append(child, w)
	}
	// The first pipe is stdin: the child reads its read end.
	parent[0], child[0] = child[0], parent[0]
	stdinW, stdoutR, stderrR := parent[0], parent[1], parent[2]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = child[0], child[1], child[2]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err := cmd.Start()
	closeAll(child)
	if err != nil {
		closeAll(parent)
		return status{}, fmt.Errorf("start %s: %w", s.shell, err)
	}
	c := &process{cmd: cmd}
	// A closed connection kills the command and stops the copiers, even if
	// a background job keeps the pipes open.
	stop := context.AfterFunc(sess.Context(), func() {
		c.kill()
		stdoutR.SetReadDeadline(time.Unix(1, 0))
		stderrR.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()

	// Client EOF closes the command's stdin (RFC 4254 section 5.3). This
	// copier is not waited for here: it ends when the channel closes.
	s.wg.Go(func() {
		copyStream(stdinW, sess)
		stdinW.Close()
	})
	var out sync.WaitGroup
	out.Go(func() { drain(stdoutOf(sess), stdoutR) })
	out.Go(func() { drain(sess.Stderr(), stderrR) })
	st := c.wait()
	out.Wait() // all output sent before the exit status
	return st, nil
}

// runPty runs cmd on a new pty of the requested size, resizing it on
// window-change.
func (s *Server) runPty(sess gliderssh.Session, cmd *exec.Cmd, win gliderssh.Window, winch <-chan gliderssh.Window) (status, error) {
	ptmx, err := startPty(cmd, win)
	if err != nil {
		return status{}, fmt.Errorf("start %s on a pty: %w", s.shell, err)
	}
	c := &process{cmd: cmd}

	var ptyMu sync.Mutex // guards ptyClosed: no resize after ptmx.Close
	ptyClosed := false
	// gliderlabs' request loop blocks on a full winch, so this drains it
	// until gliderlabs closes it, after the channel's requests end.
	s.wg.Go(func() {
		for w := range winch {
			ptyMu.Lock()
			if !ptyClosed {
				setWinsize(ptmx, w)
			}
			ptyMu.Unlock()
		}
	})
	stop := context.AfterFunc(sess.Context(), func() {
		c.kill()
		ptmx.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()

	// Ends when the channel closes or the pty is closed.
	s.wg.Go(func() { copyStream(ptmx, sess) })
	var out sync.WaitGroup
	out.Go(func() { copyStream(stdoutOf(sess), ptmx) }) // until EIO: no process holds the pty
	st := c.wait()
	ptmx.SetReadDeadline(time.Now().Add(ptyDrain))
	out.Wait() // all output sent before the exit status

	ptyMu.Lock()
	ptyClosed = true
	ptmx.Close()
	ptyMu.Unlock()
	return st, nil
}

// startPty starts cmd as a session leader with a new pty of size win as its
// controlling terminal and stdio, returning the pty's master side.
func startPty(cmd *exec.Cmd, win gliderssh.Window) (*os.File, error) {
	master, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	defer tty.Close()
	// pty.Open leaves the master in blocking mode (it calls Fd), where
	// reads ignore deadlines; use a non-blocking duplicate, which the
	// runtime poller manages.
	fd, err := unix.FcntlInt(master.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	master.Close()
	if err != nil {
		return nil, fmt.Errorf("duplicate pty: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set pty non-blocking: %w", err)
	}
	ptmx := os.NewFile(uintptr(fd), "ptmx")
	if err := setWinsize(ptmx, win); err != nil {
		ptmx.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true} // Ctty 0: stdin
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}

// setWinsize sets the pty's size without calling Fd (which would make the
// file blocking again).
func setWinsize(ptmx *os.File, w gliderssh.Window) error {
	rc, err := ptmx.SyscallConn()
	if err != nil {
		return fmt.Errorf("set pty size: %w", err)
	}
	ws := &unix.Winsize{Row: clampUint16(w.Height), Col: clampUint16(w.Width)}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return fmt.Errorf("set pty size: %w", err)
	}
	if ioErr != nil {
		return fmt.Errorf("set pty size: %w", ioErr)
	}
	return nil
}

func clampUint16(n int) uint16 { return uint16(min(max(n, 0), 0xffff)) }

// process is a started command whose process group may be killed until it
// has exited.
type process struct {
	cmd *exec.Cmd

	mu     sync.Mutex // guards exited
	exited bool       // the process is a zombie or reaped: its pid may be reused
}

// kill kills the command's process group (it is a session leader) unless
// the command has already exited.
func (p *process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// wait waits for the command to exit and reaps it. It marks the process
// exited while it is still a zombie (WNOWAIT), so kill never signals a
// reused pid.
func (p *process) wait() status {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	return statusOf(p.cmd.Wait())
}

// signalNames are the signal names of RFC 4254 section 6.10.
var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM", syscall.SIGFPE: "FPE",
	syscall.SIGHUP: "HUP", syscall.SIGILL: "ILL", syscall.SIGINT: "INT",
	syscall.SIGKILL: "KILL", syscall.SIGPIPE: "PIPE", syscall.SIGQUIT: "QUIT",
	syscall.SIGSEGV: "SEGV", syscall.SIGTERM: "TERM", syscall.SIGUSR1: "USR1",
	syscall.SIGUSR2: "USR2",
}

func statusOf(err error) status {
	if err == nil {
		return status{}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return status{code: 1}
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if name, ok := signalNames[ws.Signal()]; ok {
			return status{signal: name, core: ws.CoreDump()}
		}
		return status{code: 128 + int(ws.Signal())}
	}
	return status{code: ee.ExitCode()}
}

// drain copies src to dst until EOF, then closes src. If dst fails, src is
// closed early, so the command gets EPIPE instead of blocking.
func drain(dst io.Writer, src *os.File) {
	copyStream(dst, src)
	src.Close()
}

var bufPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// copyStream is io.Copy with a pooled buffer.
func copyStream(dst io.Writer, src io.Reader) error {
	buf := bufPool.Get().(*[32 << 10]byte)
	defer bufPool.Put(buf)
	// Hide ReadFrom/WriteTo, which would allocate their own buffers.
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf[:])
	return err
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
