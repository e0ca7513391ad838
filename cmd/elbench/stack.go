// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// Budgets of the stack's life cycle.
const (
	buildTimeout = 3 * time.Minute
	serviceReady = 15 * time.Second
	// serviceKillAt is when stop gives up on SIGTERM: the service's own grace period
	// (EL_SHUTDOWN_TIMEOUT, default 20s) plus slack.
	serviceKillAt  = 45 * time.Second
	benchPassword  = "benchpw"
	servicePackage = "github.com/emaillistener/emaillistener/cmd/emaillistener"
)

// stackOptions configures startStack. The zero value builds the service and runs it
// against plain IMAP.
type stackOptions struct {
	Bin     string   // prebuilt service binary; "" builds servicePackage into the temp dir
	WorkDir string   // parent of the temp dir; "" means os.TempDir()
	Keep    bool     // keep the temp dir (logs, Maildirs) after close
	TLS     bool     // mailboxes use Dovecot's implicit-TLS port (SecureOption 2)
	Env     []string // extra KEY=VALUE settings for the service
	// DovecotConf is appended to Dovecot's configuration (later settings win),
	// e.g. to let imap processes serve many connections each.
	DovecotConf string
	Logf        func(format string, args ...any)
}

// stack is everything a scenario runs against, all on loopback: a private Dovecot with
// hibernation (any user logs in with benchPassword), the Collector as Creatio, and the
// service as a separate process.
type stack struct {
	dir      string
	dc       *testenv.Dovecot
	col      *testenv.Collector
	arrivals *arrivals
	svc      *service
	peers    []*service // further service processes (cluster scenarios), see startPeer
	peerAPIs []*api     // their APIs, for the exists counts
	bin      string     // the service binary
	env      []string   // the service's settings, for peers
	api      *api
	target   target
	opts     stackOptions
	// logs is filled by close, after the service and Dovecot stopped (so shutdown
	// problems are included) and before the temp dir is removed.
	logs map[string]any
}

// startStack starts Dovecot, the Collector and the service, in that order. On error
// whatever was started is stopped again.
func startStack(ctx context.Context, opts stackOptions) (_ *stack, err error) {
	s, err := newStack(opts)
	if err != nil {
		return nil, err
	}
	opts, dir := s.opts, s.dir
	defer func() {
		if err != nil {
			s.dumpLogs()
			_ = s.close()
		}
	}()
	bin := opts.Bin
	if bin == "" {
		if bin, err = buildService(ctx, dir); err != nil {
			return s, err
		}
	}
	if err := s.startDovecot(); err != nil {
		return s, err
	}

	s.col = testenv.NewCollector()
	s.arrivals = newArrivals()
	s.col.OnRequest(s.arrivals.record)

	caFile := filepath.Join(dir, "dovecot-ca.pem")
	if err := os.WriteFile(caFile, s.dc.CertPEM, 0o644); err != nil {
		return s, err
	}
	s.bin = bin
	s.env = []string{"EL_IMAP_TLS_CA_FILE=" + caFile, "EL_LOG_LEVEL=warn"}
	if s.svc, err = startService(ctx, bin, dir, append(s.env, opts.Env...)); err != nil {
		return s, err
	}
	s.api = newAPI(s.svc.base, 64)
	s.target = target{addr: s.dc.IMAPAddr, endpoint: s.col.Endpoint(), password: benchPassword}
	if opts.TLS {
		s.target.addr, s.target.secure, s.target.useSSL = s.dc.IMAPSAddr, 2, true
	}
	opts.Logf("service up: pid %d, %s", s.svc.cmd.Process.Pid, s.svc.base)
	return s, nil
}

// newStack makes the stack's temp dir; nothing runs yet.
func newStack(opts stackOptions) (*stack, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if _, err := raiseNoFile(); err != nil {
		opts.Logf("WARNING: cannot raise RLIMIT_NOFILE: %v", err)
	}
	dir, err := os.MkdirTemp(opts.WorkDir, "elbench-")
	if err != nil {
		return nil, err
	}
	// As root Dovecot's mail processes run as the dovecot user and must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &stack{dir: dir, opts: opts}, nil
}

// startDovecot starts the stack's private Dovecot in <dir>/dovecot.
func (s *stack) startDovecot() error {
	t0 := time.Now()
	dc, err := testenv.StartDovecot(testenv.DovecotOptions{
		Dir: filepath.Join(s.dir, "dovecot"), AnyPassword: benchPassword, Hibernate: true, Logf: s.opts.Logf,
		ExtraConf: s.opts.DovecotConf,
	})
	if err != nil {
		return err
	}
	s.dc = dc
	s.opts.Logf("dovecot up in %v (imap %s, imaps %s)", time.Since(t0).Round(time.Millisecond), dc.IMAPAddr, dc.IMAPSAddr)
	return nil
}

// close stops the service (SIGTERM, then SIGKILL after serviceKillAt), the Collector and
// Dovecot, and removes the temp dir unless Keep. It is bounded in time and safe on a
// partly started stack.
func (s *stack) close() error {
	var errs []error
	s.logs = map[string]any{}
	if s.api != nil {
		s.api.close()
	}
	if s.dc != nil {
		s.dovecotLogNotes(s.logs)
	}
	for _, a := range s.peerAPIs {
		a.close()
	}
	for _, p := range s.peers {
		if err := p.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.svc != nil {
		t0 := time.Now()
		if err := s.svc.stop(); err != nil {
			errs = append(errs, err)
			s.opts.Logf("service stop: %v; log tail:\n%s", err, tailFile(s.svc.logPath, 4<<10))
		}
		took := time.Since(t0)
		s.opts.Logf("service stopped in %v", took.Round(time.Millisecond))
		s.logs["service_stop_seconds"] = took.Seconds()
		s.serviceLogNotes(s.logs)
	}
	if s.col != nil {
		s.col.Close()
	}
	if s.dc != nil {
		if err := s.dc.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.opts.Keep {
		s.opts.Logf("kept %s (service.log, dovecot/log)", s.dir)
	} else if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeInto closes the stack and records the logs' summary in res. A failed clean-up
// (the service exiting non-zero after SIGTERM, Dovecot processes surviving) marks the
// result not OK but keeps its numbers.
func (s *stack) closeInto(res *Result) {
	if err := s.close(); err != nil {
		res.fail("clean-up: %v", err)
	}
	res.Notes["logs"] = s.logs
}

// dumpLogs prints the tails of the service's and Dovecot's logs (on failure).
func (s *stack) dumpLogs() {
	if s.svc != nil {
		s.opts.Logf("--- service log (tail) ---\n%s", tailFile(s.svc.logPath, 8<<10))
	}
	if s.dc != nil {
		log := s.dc.Log()
		s.opts.Logf("--- dovecot log (tail) ---\n%s", log[max(0, len(log)-8<<10):])
	}
}

// serviceLogNotes summarizes what the service logged at warning level and above:
// the count and a few sample lines.
func (s *stack) serviceLogNotes(notes map[string]any) {
	n, samples := scanLog(s.svc.logPath, func(l string) bool {
		return strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")
	})
	notes["service_log_warn_error_lines"] = n
	if n > 0 {
		notes["service_log_samples"] = samples
	}
}

// dovecotLogNotes is serviceLogNotes for Dovecot's log; close calls it before it stops
// anything, so that the harness's own shutdown noise does not count.
func (s *stack) dovecotLogNotes(notes map[string]any) {
	p := filepath.Join(s.dc.Dir, "log", "dovecot.log")
	n, samples := scanLog(p, func(l string) bool {
		return strings.Contains(l, "Warning:") || strings.Contains(l, "Error:") || strings.Contains(l, "Fatal:")
	})
	notes["dovecot_log_warn_error_lines"] = n
	if n > 0 {
		notes["dovecot_log_samples"] = samples
	}
}

// scanLog counts lines matching keep and returns up to 5 distinct samples (truncated).
func scanLog(path string, keep func(string) bool) (int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n := 0
	var samples []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !keep(l) {
			continue
		}
		n++
		if len(samples) < 5 {
			samples = append(samples, truncate(l, 300))
		}
	}
	return n, samples
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b[max(0, len(b)-n):])
}

// buildService compiles the service into dir once per run.
func buildService(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go toolchain not found (or pass -bin): %w", err)
	}
	out := filepath.Join(dir, "emaillistener")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, servicePackage)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run elbench inside the module): %w\n%s", servicePackage, err, b)
	}
	return out, nil
}

// startPeer starts one more service process with the stack's settings plus
// env (later values win), logging to <dir>/<name>/service.log; close stops it.
func (s *stack) startPeer(ctx context.Context, name string, env []string) (*service, error) {
	dir := filepath.Join(s.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := startService(ctx, s.bin, dir, append(append(s.env, s.opts.Env...), env...))
	if p != nil {
		s.peers = append(s.peers, p)
		s.peerAPIs = append(s.peerAPIs, newAPI(p.base, 1))
	}
	return p, err
}

// service is the emaillistener process.
type service struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once Wait returned
	err     error         // Wait's result, read after done
	logPath string
	base    string // http://127.0.0.1:port
}

// Pid returns the service's process id.
func (s *service) Pid() int { return s.cmd.Process.Pid }

// startService runs bin on a free loopback port with env and waits until its status
// endpoint answers.
func startService(ctx context.Context, bin, dir string, env []string) (*service, error) {
	var addr string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "EL_LISTEN_ADDR="); ok {
			addr = v // the caller chose the port (it is in another setting too)
		}
	}
	if addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	logPath := filepath.Join(dir, "service.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), "EL_LISTEN_ADDR="+addr), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If elbench dies, the service is told to stop instead of holding 1000 connections.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	s := &service{cmd: cmd, done: make(chan struct{}), logPath: logPath, base: "http://" + addr}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.stop()
		return s, err
	}
	return s, nil
}

func (s *service) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, serviceReady)
	defer cancel()
	a := newAPI(s.base, 1)
	defer a.close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := a.status(ctx); err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("service exited during start-up: %v\n%s", s.err, tailFile(s.logPath, 4<<10))
		case <-ctx.Done():
			return fmt.Errorf("service not ready on %s within %v", s.base, serviceReady)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits for the exit, SIGKILLing after serviceKillAt. A non-zero
// exit after SIGTERM is reported.
func (s *service) stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(serviceKillAt)
	defer t.Stop()
	select {
	case <-s.done:
		if s.err != nil {
			return fmt.Errorf("service exit after SIGTERM: %w", s.err)
		}
		return nil
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("service did not exit within %v of SIGTERM; killed", serviceKillAt)
	}
}

// freePort asks the kernel for a free loopback port. Another process could take it
// before the service binds; startService then fails loudly rather than silently.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// settle waits at least d, then until Dovecot holds at least want connections in
// imap-hibernate or maxWait more has passed; it returns the hibernated count. Only
// hibernated IDLE connections get Dovecot's fast (5-25 ms) notification; a normal imap
// process delays it by a fixed ~500 ms (Dovecot's built-in notify delay).
func (s *stack) settle(ctx context.Context, d time.Duration, want int, maxWait time.Duration) (int, error) {
	if err := sleepCtx(ctx, d); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(maxWait)
	for {
		n := s.dc.Hibernated()
		if n >= want || time.Now().After(deadline) {
			return n, nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return n, err
		}
	}
}
