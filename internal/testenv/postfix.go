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
	"syscall"
	"testing"
	"time"
)

// Postfix is a private Postfix 3.7 instance (Debian package postfix) on two random
// loopback ports, delivering its domains to a Dovecot over LMTP, so that code that
// sends mail is tested against a real submission server:
//
//  1. StartPostfix writes DIR/conf/{main,master}.cf and a self-signed certificate,
//     creates the queue tree, and runs the master daemon itself in the foreground
//     (`master -c DIR/conf -s`, reaped by a goroutine): no `postfix start`, whose
//     shell wrapper and integrity check cost ~1.3 s and would leave the master
//     detached.
//  2. It is ready when the SMTP port greets with the instance's unique banner.
//  3. Stop sends SIGTERM to the master, which passes it on to its children, and waits
//     until no process of the instance is left (each one runs in DIR/queue).
//
// Postfix insists on running as root (its master starts daemons as the postfix user);
// StartPostfix fails with ErrPostfixNeedsRoot otherwise.
type Postfix struct {
	Dir       string // instance directory (absolute)
	SMTPAddr  string // SMTP, STARTTLS offered (and AUTH with SASL), 127.0.0.1:port
	SMTPSAddr string // SMTP over implicit TLS (the port 465 style)
	Hostname  string // myhostname: the name in the banner and in Received fields
	CertPEM   []byte // the server's self-signed certificate (localhost, 127.0.0.1)

	opts   PostfixOptions
	master string // the master daemon executable

	mu   sync.Mutex // serializes start/stop; guards proc
	proc *masterProc
}

// PostfixOptions configures StartPostfix. The zero value of every optional field is a
// safe default.
type PostfixOptions struct {
	// Dir holds all state of the instance (required for StartPostfix; NewPostfixT uses
	// a fresh t.TempDir). Every parent must be traversable by the postfix user.
	Dir string
	// Dovecot receives the mail for Domains over LMTP (required).
	Dovecot *Dovecot
	// Domains are the mail domains delivered to the Dovecot. Default: example.com.
	// Mail to any other domain is bounced at once (no DNS, no relaying).
	Domains []string
	// Recipients, if set, are the only addresses accepted at RCPT TO, plus whole
	// domains written as "@domain"; others are refused with 550 5.1.1 during the SMTP
	// session, like a server that knows its users. Empty: every address in Domains is
	// accepted and an unknown one is bounced after Dovecot's LMTP refuses it.
	Recipients []string
	// SASL enables SMTP AUTH (PLAIN, LOGIN) against the Dovecot's users. The Dovecot
	// must have been started with DovecotSASLConf in its ExtraConf. Relaying then
	// needs a login; the local Domains accept mail from anyone.
	SASL bool
	// MessageSizeLimit is message_size_limit in bytes (0: Postfix's 10 MB).
	MessageSizeLimit int64
	// Logf receives progress messages (start/stop durations). Nil discards them.
	Logf func(format string, args ...any)
}

// ErrNoPostfix means the Postfix binaries were not found.
var ErrNoPostfix = errors.New("testenv: postfix not found; run scripts/install-test-deps.sh (installs the postfix package)")

// ErrPostfixNeedsRoot: Postfix refuses to run as an ordinary user ("the postfix command
// is reserved for the superuser"). The tests that need it fail rather than skip; run
// them as root, as CI does.
var ErrPostfixNeedsRoot = errors.New("testenv: a private Postfix needs root (Postfix's master must start its daemons as the postfix user); run the tests as root")

// StartPostfix starts a private Postfix and returns once it greets SMTP clients. On
// failure the error includes the Postfix log and nothing of the instance keeps
// running. Call Stop when done.
func StartPostfix(opts PostfixOptions) (*Postfix, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: PostfixOptions.Dir is required")
	}
	if opts.Dovecot == nil || opts.Dovecot.LMTPAddr == "" {
		return nil, errors.New("testenv: PostfixOptions.Dovecot is required (mail is delivered to its LMTP)")
	}
	if os.Geteuid() != 0 {
		return nil, ErrPostfixNeedsRoot
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if len(opts.Domains) == 0 {
		opts.Domains = []string{"example.com"}
	}
	if err := validatePostfixOptions(&opts); err != nil {
		return nil, err
	}
	master, err := findPostfixMaster()
	if err != nil {
		return nil, err
	}
	owner, err := lookupPostfixOwner()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testenv: PostfixOptions.Dir: %w", err)
	}
	p := &Postfix{Dir: dir, opts: opts, master: master,
		Hostname: "smtp-" + strings.ToLower(rand.Text()[:8]) + ".test"}
	if err := postfixLayout(dir, owner); err != nil {
		return nil, err
	}
	if p.CertPEM, err = ensureCert(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
		return nil, err
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for attempt := 1; ; attempt++ {
		ports, err := pickPorts(2)
		if err != nil {
			return nil, err
		}
		p.SMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		p.SMTPSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		err = p.startLocked()
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return nil, err
		}
		opts.Logf("testenv: postfix start attempt %d: port taken, retrying with new ports", attempt)
	}
}

func validatePostfixOptions(opts *PostfixOptions) error {
	bad := func(s string) bool { return s == "" || strings.ContainsAny(s, " \t\r\n,:") }
	for _, d := range opts.Domains {
		if bad(d) || strings.Contains(d, "@") {
			return fmt.Errorf("testenv: PostfixOptions.Domains: invalid domain %q", d)
		}
	}
	for _, r := range opts.Recipients {
		if bad(r) || !strings.Contains(r, "@") {
			return fmt.Errorf("testenv: PostfixOptions.Recipients: invalid address %q (want user@domain or @domain)", r)
		}
	}
	if opts.SASL {
		if _, err := os.Stat(dovecotSASLSocket(opts.Dovecot)); err != nil {
			return fmt.Errorf("testenv: PostfixOptions.SASL needs the Dovecot started with ExtraConf: testenv.DovecotSASLConf: %w", err)
		}
	}
	return nil
}

// findPostfixMaster locates the master daemon through postconf's built-in
// daemon_directory (/usr/lib/postfix/sbin on Debian).
func findPostfixMaster() (string, error) {
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		postconf = "/usr/sbin/postconf"
	}
	// -d: the compiled-in default; there may be no /etc/postfix/main.cf at all.
	out, err := exec.Command(postconf, "-d", "-h", "daemon_directory").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNoPostfix, postconf, err)
	}
	master := filepath.Join(strings.TrimSpace(string(out)), "master")
	if st, err := os.Stat(master); err != nil || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%w: no executable %s", ErrNoPostfix, master)
	}
	return master, nil
}

// startLocked writes the configuration for the current ports and starts the master.
// p.mu must be held and p.proc must be nil.
func (p *Postfix) startLocked() error {
	for _, a := range []string{p.SMTPAddr, p.SMTPSAddr} {
		if portInUse(a) {
			return fmt.Errorf("%w: something already listens on %s", errAddrInUse, a)
		}
	}
	if err := p.writeConfig(); err != nil {
		return err
	}
	logOff, stderrOff := fileSize(p.logPath()), fileSize(p.stderrPath())
	stderr, err := os.OpenFile(p.stderrPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer stderr.Close() // the child has its own copy

	// -s keeps stdout/stderr (fatal start-up errors) instead of /dev/null. The master
	// stays in the foreground (it only calls setsid), so Wait reaps it.
	cmd := exec.Command(p.master, "-c", filepath.Join(p.Dir, "conf"), "-s")
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// If the test binary dies, the master gets SIGTERM and passes it to its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start postfix master: %w", err)
	}
	mp := &masterProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		mp.err = cmd.Wait()
		close(mp.done)
	}()
	p.proc = mp
	if err := p.waitReady(mp); err != nil {
		_ = p.stopLocked()
		return p.startError(err, logOff, stderrOff)
	}
	p.opts.Logf("testenv: postfix ready in %v (smtp %s, smtps %s, lmtp → %s, dir %s)",
		time.Since(t0).Round(time.Millisecond), p.SMTPAddr, p.SMTPSAddr, p.opts.Dovecot.LMTPAddr, p.Dir)
	return nil
}

func (p *Postfix) writeConfig() error {
	params := postfixConfParams{
		dir: p.Dir, hostname: p.Hostname, banner: p.banner(),
		smtpPort: portOf(p.SMTPAddr), smtpsPort: portOf(p.SMTPSAddr),
		lmtpAddr: p.opts.Dovecot.LMTPAddr, domains: p.opts.Domains,
		messageSizeLimit: p.opts.MessageSizeLimit,
	}
	if p.opts.SASL {
		params.saslSocket = dovecotSASLSocket(p.opts.Dovecot)
	}
	conf := filepath.Join(p.Dir, "conf")
	if len(p.opts.Recipients) > 0 {
		path := filepath.Join(conf, "recipients")
		if err := writeSettled(path, []byte(renderRecipients(p.opts.Recipients)), 0o644); err != nil {
			return err
		}
		params.recipientsMap = "texthash:" + path
	}
	if err := writeSettled(filepath.Join(conf, "main.cf"), []byte(renderPostfixMain(params)), 0o644); err != nil {
		return err
	}
	return writeSettled(filepath.Join(conf, "master.cf"), []byte(renderPostfixMaster(params)), 0o644)
}

// banner is the per-instance token in the SMTP greeting; a listener left over from
// another instance on a recycled port cannot pass for this one.
func (p *Postfix) banner() string { return "testenv-" + p.Hostname }

// waitReady polls for the instance's banner until mp exits or readyTimeout passes.
func (p *Postfix) waitReady(mp *masterProc) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if checkSMTPBanner(p.SMTPAddr, p.banner()) {
			return nil
		}
		select {
		case <-mp.done:
			return fmt.Errorf("postfix master exited during start-up: %v", mp.err)
		case <-deadline.C:
			return fmt.Errorf("postfix did not greet on %s within %v", p.SMTPAddr, readyTimeout)
		case <-tick.C:
		}
	}
}

// checkSMTPBanner connects to addr and reports whether the greeting is a 220 carrying
// want.
func checkSMTPBanner(addr, want string) bool {
	line, ok := firstLine(addr, "QUIT\r\n")
	return ok && strings.HasPrefix(line, "220") && strings.Contains(line, want)
}

func (p *Postfix) startError(err error, logOff, stderrOff int64) error {
	return startError("postfix", p.Dir, err, p.stderrPath(), stderrOff, p.logPath(), logOff)
}

// Stop shuts the instance down and returns once every process of it is gone and the
// ports are free; on a stopped instance it is a no-op:
//
//  1. SIGTERM to the master, which passes the signal on to its children and exits
//     (master(8)); smtpd processes serving a client exit too.
//  2. Once the master is reaped, stragglers get postfixStragglerGrace and are then
//     SIGKILLed: a freshly forked child that has not exec'd its daemon yet lingers
//     ~1 s otherwise (measured), which would double the cost of every clean-up.
//  3. Whatever is left after 5 s is SIGKILLed.
func (p *Postfix) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked()
}

// postfixStragglerGrace is how long processes may outlive the master before Stop
// kills them.
const postfixStragglerGrace = 100 * time.Millisecond

func (p *Postfix) stopLocked() error {
	mp := p.proc
	if mp == nil {
		return nil
	}
	p.proc = nil
	t0 := time.Now()
	_ = mp.cmd.Process.Signal(syscall.SIGTERM)
	err := killSurvivors("postfix", p.opts.Logf, p.terminate(mp, t0), func(wait time.Duration) []int { return p.waitGone(mp, wait) })
	p.opts.Logf("testenv: postfix stopped in %v", time.Since(t0).Round(time.Millisecond))
	return err
}

// terminate runs step 2 of Stop until the instance is gone or stopGrace has passed
// since t0; it returns the PIDs still alive then.
func (p *Postfix) terminate(mp *masterProc, t0 time.Time) []int {
	var masterGone time.Time
	tick := time.NewTicker(procPollInterval)
	defer tick.Stop()
	for {
		left := p.PIDs()
		masterDone := isClosed(mp.done)
		switch {
		case masterDone && len(left) == 0:
			return nil
		case masterDone && masterGone.IsZero():
			masterGone = time.Now()
		case masterDone && time.Since(masterGone) >= postfixStragglerGrace:
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Since(t0) >= stopGrace {
			if !masterDone {
				left = append(left, mp.cmd.Process.Pid)
			}
			return left
		}
		<-tick.C
	}
}

// waitGone waits until the master has been reaped and no process of the instance is
// left, or until timeout; it returns the PIDs still alive then.
func (p *Postfix) waitGone(mp *masterProc, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(procPollInterval)
	defer tick.Stop()
	for {
		left := p.PIDs()
		if !isClosed(mp.done) && !slices.Contains(left, mp.cmd.Process.Pid) {
			left = append(left, mp.cmd.Process.Pid)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		<-tick.C
	}
}

// PIDs lists the live (non-zombie) processes of the instance: the master and every
// daemon it started chdir to queue_directory, which no other instance shares.
func (p *Postfix) PIDs() []int {
	queue := filepath.Join(p.Dir, "queue")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || (cwd != queue && !strings.HasPrefix(cwd, queue+"/")) {
			continue
		}
		if !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Running reports whether the instance is started.
func (p *Postfix) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc != nil
}

// Log returns everything the instance logged so far: the master's stderr followed by
// Postfix's maillog_file (connections, AUTH failures, deliveries and bounces).
func (p *Postfix) Log() string {
	var b strings.Builder
	for _, path := range []string{p.stderrPath(), p.logPath()} {
		if data, err := os.ReadFile(path); err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

// TLSConfig returns a client configuration that trusts exactly this instance's
// certificate, for STARTTLS on SMTPAddr or implicit TLS on SMTPSAddr.
func (p *Postfix) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func (p *Postfix) logPath() string    { return filepath.Join(p.Dir, "log", "postfix.log") }
func (p *Postfix) stderrPath() string { return filepath.Join(p.Dir, "log", "stderr.log") }

// NewPostfixT starts a Postfix for the test in a fresh t.TempDir (unless opts.Dir is
// set), logs through t.Logf, and stops it in t.Cleanup; if the test failed, the
// Postfix log is printed first. Not being root or a missing postfix fails the test:
// it is never skipped, because a skipped integration test would count as passing.
func NewPostfixT(t testing.TB, opts PostfixOptions) *Postfix {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
		// t.TempDir creates 0700 directories; the postfix user must traverse them.
		for _, dir := range []string{filepath.Dir(opts.Dir), opts.Dir} {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatalf("testenv: %v", err)
			}
		}
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	p, err := StartPostfix(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfix log (%s):\n%s", p.Dir, tail(p.Log(), logTailBytes))
		}
		if err := p.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return p
}
