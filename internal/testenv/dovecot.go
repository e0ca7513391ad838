// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Timing budgets of the Dovecot life cycle.
const (
	// readyTimeout bounds one start; a healthy start takes 40-65 ms.
	readyTimeout = 15 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before it SIGKILLs leftovers
	// (login processes with open clients outlive the master by seconds).
	stopGrace = 5 * time.Second
	// childTermDelay is how long Stop lets the master begin its own shutdown before it
	// signals the remaining children, so the master does not respawn them.
	childTermDelay = 50 * time.Millisecond
	// killWait is how long Stop waits for SIGKILLed processes to vanish.
	killWait = 2 * time.Second
	// startAttempts is how often StartDovecot picks fresh ports when another process
	// took one between picking and binding.
	startAttempts = 4
	// restartAttempts and restartBackoff: Restart must reuse its ports, so it can only
	// wait for a squatter to go away.
	restartAttempts = 10
	restartBackoff  = 100 * time.Millisecond
	// logTailBytes is how much of the log goes into start errors.
	logTailBytes = 16 << 10
	// minScaleInotifyInstances: below this, Scale/Hibernate instances silently fall back
	// to 30 s IDLE polling past ~128 connections (fs.inotify.max_user_instances is per
	// uid, default 128, and every mail process shares Dovecot's uid).
	minScaleInotifyInstances = 1024
)

// ErrNoDovecot means the dovecot binary was not found.
var ErrNoDovecot = errors.New("testenv: dovecot binary not found; run scripts/install-test-deps.sh (installs dovecot-imapd and dovecot-lmtpd)")

// errAddrInUse marks a start that failed because a port was taken.
var errAddrInUse = errors.New("testenv: address already in use")

// DovecotOptions configures StartDovecot. The zero value of every optional field is a
// safe default.
type DovecotOptions struct {
	// Dir holds all state of the instance (required). It should be an empty directory,
	// or one a previous instance used (its mail and certificate are then kept). As root
	// every parent directory must be traversable by the dovecot user.
	Dir string
	// Users maps user name to password (passwd-file with {PLAIN} passwords).
	Users map[string]string
	// AnyPassword, if set, lets any user name log in with this password (a static passdb
	// after the passwd-file), which makes thousands of mailboxes cheap. LMTP then accepts
	// any recipient. Users or AnyPassword must be set.
	AnyPassword string
	// Hibernate moves IDLE connections to imap-hibernate after 2 s: IDLE notifications
	// then arrive in 5-25 ms instead of ~500 ms, so delivery-latency benchmarks must set
	// it. It implies Scale.
	Hibernate bool
	// Scale sets the client and process limits for thousands of connections.
	Scale bool
	// ExtraConf is appended to dovecot.conf verbatim; later settings win.
	ExtraConf string
	// Logf receives progress messages (start/stop durations, warnings). Nil discards them.
	Logf func(format string, args ...any)
	// Binary is the dovecot executable. Empty: "dovecot" from PATH, then /usr/sbin/dovecot
	// (/usr/sbin is not on every non-root PATH).
	Binary string
}

// Dovecot is a running (or stopped) private Dovecot instance. Its exported fields are
// fixed for the life of the value: Restart reuses ports, directory and certificate.
// Methods are safe for concurrent use; Stop and Restart are serialized.
type Dovecot struct {
	Dir       string // instance directory (absolute)
	IMAPAddr  string // plain IMAP (STARTTLS offered), 127.0.0.1:port
	IMAPSAddr string // implicit-TLS IMAP
	LMTPAddr  string // LMTP
	CertPEM   []byte // the server's self-signed certificate (localhost, 127.0.0.1, ::1)

	opts     DovecotOptions
	bin      string
	owner    mailOwner
	instance string // instance_name; in every process title, so Stop finds them all

	mu   sync.Mutex  // serializes start/stop; guards proc
	proc *masterProc // nil while stopped

	deliverSeq atomic.Uint64 // makes DeliverFile names unique within this process
}

// masterProc is one run of `dovecot -F`. A goroutine waits on it, so it never lingers as
// a zombie that makes master.pid look alive (Dovecot then refuses to start).
type masterProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait returned
	err  error         // Wait's result; read only after done is closed
}

// StartDovecot writes the configuration into opts.Dir, starts Dovecot on three free
// loopback ports and returns once it greets IMAP clients. On failure the error includes
// the Dovecot log and nothing of the instance keeps running. Call Stop when done.
func StartDovecot(opts DovecotOptions) (*Dovecot, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: DovecotOptions.Dir is required")
	}
	if err := validateUsers(&opts); err != nil {
		return nil, err
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	bin, err := findDovecot(opts.Binary)
	if err != nil {
		return nil, err
	}
	owner, err := lookupMailOwner()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testenv: DovecotOptions.Dir: %w", err)
	}
	d := &Dovecot{Dir: dir, opts: opts, bin: bin, owner: owner,
		instance: "testenv-" + strings.ToLower(rand.Text()[:10])}
	if err := d.prepareDir(); err != nil {
		return nil, err
	}
	if n := inotifyInstances(); (opts.Scale || opts.Hibernate) && n < minScaleInotifyInstances {
		opts.Logf("testenv: WARNING fs.inotify.max_user_instances is %d: past ~%d IDLE connections Dovecot polls every 30 s and hibernation silently stops; run scripts/install-test-deps.sh as root", n, n)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for attempt := 1; ; attempt++ {
		ports, err := pickPorts(3)
		if err != nil {
			return nil, err
		}
		d.setPorts(ports[0], ports[1], ports[2])
		err = d.startLocked()
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return nil, err
		}
		opts.Logf("testenv: dovecot start attempt %d: port taken, retrying with new ports", attempt)
	}
}

// findDovecot resolves the dovecot executable.
func findDovecot(bin string) (string, error) {
	if bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoDovecot, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNoDovecot
}

func (d *Dovecot) setPorts(imap, imaps, lmtp int) {
	d.IMAPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(imap))
	d.IMAPSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(imaps))
	d.LMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lmtp))
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// prepareDir creates the directory layout, the certificate and the users file.
func (d *Dovecot) prepareDir() error {
	// 0755 everywhere: as root the imap processes run as the dovecot user and must reach
	// DIR/mail/<user>; os.MkdirTemp and t.TempDir create 0700 directories.
	for _, sub := range []string{"", "run", "state", "log", "mail"} {
		p := filepath.Join(d.Dir, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	if d.owner.root {
		if err := os.Chown(mailRoot(d.Dir), d.owner.uid, d.owner.gid); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := checkTraversable(filepath.Dir(d.Dir)); err != nil {
			return err
		}
	}
	certPEM, err := ensureCert(filepath.Join(d.Dir, "cert.pem"), filepath.Join(d.Dir, "key.pem"))
	if err != nil {
		return err
	}
	d.CertPEM = certPEM
	users := filepath.Join(d.Dir, "users")
	if err := writeUsers(users, d.opts.Users); err != nil {
		return fmt.Errorf("testenv: write users: %w", err)
	}
	// The auth process runs as default_internal_user (dovecot), not as root, and opens
	// the passwd-file lazily: an unreadable file shows only at the first login as
	// "Temporary authentication failure".
	if err := d.chownMail(users); err != nil {
		return err
	}
	return nil
}

// checkTraversable fails early, with a readable message, when the dovecot user could
// not reach the mail directory; Dovecot itself would only log "Permission denied" on
// the first login.
func checkTraversable(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("testenv: %s (mode %v) is not traversable by the dovecot user; chmod o+x it or put DovecotOptions.Dir elsewhere", p, st.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// startLocked starts Dovecot on the ports in d's addresses and waits until it is ready.
// d.mu must be held and d.proc must be nil.
func (d *Dovecot) startLocked() error {
	if err := removeStalePID(d.Dir, d.instance); err != nil {
		return err
	}
	for _, a := range []string{d.IMAPAddr, d.IMAPSAddr, d.LMTPAddr} {
		if portInUse(a) {
			return fmt.Errorf("%w: something already listens on %s", errAddrInUse, a)
		}
	}
	greeting := "testenv-" + rand.Text()[:16] + " ready."
	conf := renderConf(confParams{
		dir: d.Dir, instance: d.instance, greeting: greeting, owner: d.owner, opts: &d.opts,
		imapPort: portOf(d.IMAPAddr), imapsPort: portOf(d.IMAPSAddr), lmtpPort: portOf(d.LMTPAddr),
	})
	if err := os.WriteFile(confPath(d.Dir), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("testenv: write dovecot.conf: %w", err)
	}
	logOff, stderrOff := fileSize(logPath(d.Dir)), fileSize(stderrPath(d.Dir))
	stderr, err := os.OpenFile(stderrPath(d.Dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer stderr.Close() // the child has its own copy of the descriptor

	cmd := exec.Command(d.bin, "-F", "-c", confPath(d.Dir))
	cmd.Dir = d.Dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// If the test binary dies (panic, -timeout), the master gets SIGTERM and takes its
	// children down instead of leaving them on the ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := raiseNoFile(); err != nil {
		d.opts.Logf("testenv: raise RLIMIT_NOFILE: %v", err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start dovecot: %w", err)
	}
	p := &masterProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	d.proc = p
	if err := d.waitReady(p, greeting); err != nil {
		_ = d.stopLocked()
		return d.startError(err, logOff, stderrOff)
	}
	d.opts.Logf("testenv: dovecot ready in %v (imap %s, imaps %s, lmtp %s, dir %s)",
		time.Since(t0).Round(time.Millisecond), d.IMAPAddr, d.IMAPSAddr, d.LMTPAddr, d.Dir)
	return nil
}

// waitReady polls for this start's unique greeting until p exits or readyTimeout passes.
func (d *Dovecot) waitReady(p *masterProc, greeting string) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if checkGreeting(d.IMAPAddr, greeting) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("dovecot exited during start-up: %v", p.err)
		case <-deadline.C:
			return fmt.Errorf("dovecot did not greet on %s within %v", d.IMAPAddr, readyTimeout)
		case <-tick.C:
		}
	}
}

func (d *Dovecot) startError(err error, logOff, stderrOff int64) error {
	return startError("dovecot", d.Dir, err, stderrPath(d.Dir), stderrOff, logPath(d.Dir), logOff)
}

// startError attaches what a server wrote to its stderr and log since the start
// (from the given offsets) to err, and classifies port clashes as errAddrInUse.
func startError(name, dir string, err error, stderr string, stderrOff int64, log string, logOff int64) error {
	logs := readTail(stderr, stderrOff, logTailBytes) + readTail(log, logOff, logTailBytes)
	if strings.Contains(logs, "Address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return fmt.Errorf("testenv: %w\n--- %s log (%s) ---\n%s", err, name, dir, logs)
}

// Stop shuts the instance down and returns once every process of it is gone and the
// ports are free; on a stopped instance it is a no-op. The sequence, and why:
//
//  1. SIGTERM to the master. Services without clients exit within ~20 ms.
//  2. After childTermDelay, SIGTERM to every other process of the instance: an imap
//     process serving a connected client outlives the master indefinitely (measured
//     here, despite shutdown_clients = yes), and keeps the log and stats processes
//     alive. The log process is signalled last, so the others' last words are logged.
//  3. Once the master is alone, SIGKILL it: it only lingers ~1 s polling for children
//     that are already gone (measured 1.0-1.1 s). This halves the cost of every
//     test's clean-up.
//  4. Whatever is left after 5 s is SIGKILLed.
//
// master.pid is removed so the next start is not refused (see removeStalePID).
func (d *Dovecot) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopLocked()
}

func (d *Dovecot) stopLocked() error {
	p := d.proc
	if p == nil {
		return nil
	}
	d.proc = nil
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	err := killSurvivors("dovecot", d.opts.Logf, d.terminate(p, t0), func(wait time.Duration) []int { return d.waitGone(p, wait) })
	if rmErr := os.Remove(masterPIDPath(d.Dir)); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = fmt.Errorf("testenv: %w", rmErr)
	}
	d.opts.Logf("testenv: dovecot stopped in %v", time.Since(t0).Round(time.Millisecond))
	return err
}

// killSurvivors SIGKILLs the processes left after a graceful stop and waits
// (killWait) until waitGone reports them gone.
func killSurvivors(name string, logf func(string, ...any), left []int, waitGone func(time.Duration) []int) error {
	if len(left) == 0 {
		return nil
	}
	logf("testenv: %s processes %v still alive %v after SIGTERM; sending SIGKILL", name, left, stopGrace)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if left := waitGone(killWait); len(left) > 0 {
		return fmt.Errorf("testenv: %s processes %v survived SIGKILL", name, left)
	}
	return nil
}

// terminate runs steps 2 and 3 of Stop until the instance is gone or stopGrace has
// passed since t0; it returns the PIDs still alive then.
func (d *Dovecot) terminate(p *masterProc, t0 time.Time) []int {
	master := p.cmd.Process.Pid
	signalled := map[int]bool{master: true}
	killedMaster := false
	tick := time.NewTicker(procPollInterval)
	defer tick.Stop()
	for {
		var others []instProc
		for _, pr := range instanceProcs(d.Dir, d.instance) {
			if pr.pid != master {
				others = append(others, pr)
			}
		}
		masterDone := isClosed(p.done)
		switch {
		case len(others) == 0 && masterDone:
			return nil
		case len(others) == 0 && !killedMaster:
			_ = p.cmd.Process.Kill()
			killedMaster = true
		case len(others) > 0 && time.Since(t0) >= childTermDelay:
			termChildren(others, signalled)
		}
		if time.Since(t0) >= stopGrace {
			left := pidsOf(others)
			if !masterDone {
				left = append(left, master)
			}
			return left
		}
		<-tick.C
	}
}

// termChildren sends SIGTERM once to each process, holding back the log process while
// others still exist.
func termChildren(procs []instProc, signalled map[int]bool) {
	onlyLog := true
	for _, pr := range procs {
		if !isLogProc(pr) {
			onlyLog = false
		}
	}
	for _, pr := range procs {
		if signalled[pr.pid] || (isLogProc(pr) && !onlyLog) {
			continue
		}
		_ = syscall.Kill(pr.pid, syscall.SIGTERM)
		signalled[pr.pid] = true
	}
}

func isLogProc(pr instProc) bool { return strings.HasSuffix(pr.title, "/log") }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitGone waits until the master has been reaped and no instance process is left, or
// until timeout; it returns the PIDs still alive.
func (d *Dovecot) waitGone(p *masterProc, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(procPollInterval)
	defer tick.Stop()
	for {
		left := pidsOf(instanceProcs(d.Dir, d.instance))
		if !isClosed(p.done) && !slices.Contains(left, p.cmd.Process.Pid) {
			left = append(left, p.cmd.Process.Pid)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		<-tick.C
	}
}

// Restart stops the instance (if running) and starts it again on the same ports with the
// same mail, users and certificate, for testing reconnects. Mail appended with
// DeliverFile while it was down is there after the restart.
func (d *Dovecot) Restart() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.stopLocked(); err != nil {
		return err
	}
	return startOnSamePorts(d.startLocked)
}

// Running reports whether the instance is started.
func (d *Dovecot) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc != nil
}

// startOnSamePorts runs start, a restart on the ports an instance already
// had: while another process holds one of them (errAddrInUse) it can only
// wait for it to go away, restartAttempts times restartBackoff at most.
func startOnSamePorts(start func() error) error {
	var err error
	for range restartAttempts {
		if err = start(); err == nil || !errors.Is(err, errAddrInUse) {
			return err
		}
		time.Sleep(restartBackoff) // someone else holds our port; nothing to wait on but time
	}
	return err
}

// PIDs lists the live processes of the instance (master and children), e.g. for a
// benchmark that sums their memory.
func (d *Dovecot) PIDs() []int { return pidsOf(instanceProcs(d.Dir, d.instance)) }

// Hibernated returns how many client connections imap-hibernate currently holds, read
// from its process titles ("…/imap-hibernate [N connections]", verbose_proctitle). Dovecot
// logs nothing when a connection hibernates, so this is the only way for a benchmark to
// know all its IDLE connections reached the cheap, fast-notifying state.
func (d *Dovecot) Hibernated() int {
	n := 0
	for _, pr := range instanceProcs(d.Dir, d.instance) {
		_, rest, ok := strings.Cut(pr.title, "/imap-hibernate [")
		if !ok {
			continue
		}
		var k int
		if _, err := fmt.Sscanf(rest, "%d connections]", &k); err == nil {
			n += k
		}
	}
	return n
}

// Log returns everything the instance logged so far, over all restarts: the master's
// stderr (config errors) followed by Dovecot's log_path (logins, auth and mail errors).
func (d *Dovecot) Log() string {
	var b strings.Builder
	for _, p := range []string{stderrPath(d.Dir), logPath(d.Dir)} {
		if data, err := os.ReadFile(p); err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

// TLSConfig returns a client configuration that trusts exactly this instance's
// certificate, for IMAPSAddr or STARTTLS on IMAPAddr.
func (d *Dovecot) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.CertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}
