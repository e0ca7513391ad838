// SPDX-License-Identifier: Apache-2.0

package testenv

// Cyrus IMAP 3.6 (Debian 12) as a second, differently built IMAP server for the tests:
// another namespace layout ("INBOX."-prefixed names with "." as separator by default),
// another IDLE implementation (idled), another mailbox store.
//
// Where the binaries come from: cyrus-imapd declares "Conflicts: imap-server" and would
// replace dovecot-imapd, so scripts/install-cyrus.sh installs only its dependencies
// (cyrus-common brings master, ctl_cyrusdb and the `cyrus` user; sasl2-bin brings
// saslpasswd2) and unpacks cyrus-imapd itself (imapd, idled) into a private root,
// /opt/emaillistener-test/cyrus, that dpkg knows nothing about.
//
// How one instance runs (as root, the normal case here and in CI):
//
//   - All state lives in Dir: imapd.conf, cyrus.conf, config/ (Cyrus's configdirectory:
//     mailboxes.db, the private sasldb2, sockets, locks, proc files), spool/ (the mail),
//     cert.pem/key.pem, master.out (master's stdout/stderr) and cyrus.log (its syslog).
//   - The process tree is /bin/sh as PID 1 of a new PID and mount namespace, and Cyrus's
//     master below it (master drops to the `cyrus` user; imapd and idled are its
//     children). The namespaces buy three things:
//       1. Logs. Cyrus logs only through syslog(3), i.e. to /dev/log, which these machines
//          do not have. In its private mount namespace the instance gets a private /dev: a
//          small tmpfs holding symlinks to every entry of the real /dev (bound below
//          Dir/run) plus /dev/log pointing at a datagram socket in Dir/run that this
//          package reads into Dir/cyrus.log. Nothing outside the instance sees any of
//          it, so parallel test binaries (each with their own instances) and a real
//          syslog daemon, if any, are unaffected; nothing is created on the host's /dev.
//       2. Stop is exact and quick: master shuts its children down on SIGTERM (10-20
//          ms), and if anything is left after a second, killing PID 1 of the PID
//          namespace makes the kernel kill every process in it. Stop never has to guess
//          which processes are Cyrus's (imapd rewrites its process title; no path
//          identifies it).
//       3. No leftovers: the shell gets SIGKILL when the test binary dies (Pdeathsig;
//          master itself loses that setting when it drops privileges), which takes the
//          whole instance down with it.
//     master runs in a session of its own (Setsid): on SIGTERM it kill(0, SIGTERM)s its
//     process group, which would otherwise stop every other instance of the test binary.
//   - Ready means: the IMAP port greets with this instance's unique servername.
//   - Users are created with saslpasswd2 in config/sasldb2 (auxprop/sasldb, PLAIN and
//     LOGIN, plaintext allowed on loopback); each user's INBOX is created at its first
//     login (autocreate_quota: 0), and StartCyrus logs every user in once, so INBOX
//     exists before a test appends. "user@domain" names use Cyrus virtual domains.
//   - failedloginpause is 0: by default imapd answers a wrong password after 3 s.
//
// Without namespaces (not root, or root without CAP_SYS_ADMIN, e.g. in an unprivileged
// container; detected and logged) master runs directly (as the invoking user when not
// root), Stop signals its process tree, and the syslog is not captured (Log says so).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// DefaultCyrusRoot is where scripts/install-cyrus.sh unpacks cyrus-imapd; the
// environment variable CYRUS_ROOT overrides it for both.
const DefaultCyrusRoot = "/opt/emaillistener-test/cyrus"

// Binaries of the cyrus-common and sasl2-bin packages (installed normally).
const (
	cyrusMaster     = "/usr/lib/cyrus/bin/master"
	cyrusCtlCyrusdb = "/usr/lib/cyrus/bin/ctl_cyrusdb"
	saslpasswd2     = "/usr/sbin/saslpasswd2"
)

// Timing budgets of the Cyrus life cycle.
const (
	// cyrusReadyTimeout bounds one start; a healthy start takes 80-200 ms.
	cyrusReadyTimeout = 10 * time.Second
	// cyrusStopGrace is how long Stop waits for master's own clean shutdown (measured
	// 6-20 ms, with IDLE clients connected) before it kills the namespace.
	cyrusStopGrace = time.Second
)

// ErrNoCyrus means the Cyrus binaries were not found.
var ErrNoCyrus = errors.New("testenv: Cyrus IMAP not found; run scripts/install-cyrus.sh (installs cyrus-common and sasl2-bin, unpacks cyrus-imapd into " + DefaultCyrusRoot + " without replacing Dovecot)")

// CyrusOptions configures StartCyrus. The zero value of every optional field is a safe
// default.
type CyrusOptions struct {
	// Dir holds all state of the instance (required): an empty directory, or one a
	// previous instance used (its mail and certificate are then kept). As root every
	// parent directory must be traversable by the cyrus user.
	Dir string
	// Users maps user name to password (required, at least one). A name "user@domain"
	// lives in the Cyrus virtual domain "domain". With the default namespace the part
	// before "@" must not contain "." (Cyrus's hierarchy separator there).
	Users map[string]string
	// NoIdled disables idled: IDLE then learns of new mail only by polling every 60 s
	// (imapidlepoll), as on a Cyrus whose administrator did not enable it. With idled
	// (the default) EXISTS arrives 10-50 ms after an APPEND from another connection.
	NoIdled bool
	// AltNamespace selects altnamespace and unixhierarchysep: folders are siblings of
	// INBOX ("Projects/2024") with "/" as separator. Default: Debian's defaults, folders
	// below INBOX ("INBOX.Projects.2024") with "." as separator.
	AltNamespace bool
	// Logf receives progress messages (start/stop durations, warnings). Nil discards them.
	Logf func(format string, args ...any)
	// Root is where cyrus-imapd was unpacked. Empty: $CYRUS_ROOT, then DefaultCyrusRoot.
	Root string
}

// Cyrus is a running (or stopped) private Cyrus IMAP instance. Its exported fields are
// fixed for the life of the value: Restart reuses ports, directory and certificate.
// Methods are safe for concurrent use; Stop and Restart are serialized.
type Cyrus struct {
	Dir       string // instance directory (absolute)
	IMAPAddr  string // plain IMAP (STARTTLS offered), 127.0.0.1:port
	IMAPSAddr string // implicit-TLS IMAP
	CertPEM   []byte // the server's self-signed certificate (localhost, 127.0.0.1, ::1)
	// Separator is the hierarchy separator: "." by default, "/" with AltNamespace.
	Separator string

	opts       CyrusOptions
	root       string // cyrus-imapd's private root
	servername string // unique per value; in the greeting, so readiness is unambiguous
	owner      cyrusOwner
	ns         bool // run in private PID and mount namespaces (root, unless refused)

	mu   sync.Mutex // serializes start/stop; guards proc and logs
	proc *cyrusProc // nil while stopped
	logs *syslogSink
}

// cyrusOwner is the account master drops to: the package's `cyrus` user as root,
// otherwise the invoking user.
type cyrusOwner struct {
	name     string
	uid, gid int
	root     bool // namespaces and chown are available
}

// cyrusProc is one run of the instance: the namespace's init shell (root) or master.
type cyrusProc struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once Wait returned
	err   error         // Wait's result; read only after done is closed
	pidNS string        // "pid:[inode]" of the instance's PID namespace; "" without one
}

// StartCyrus writes the configuration into opts.Dir, creates the users, starts Cyrus on
// two free loopback ports and returns once it greets IMAP clients and every user's
// INBOX exists. On failure the error includes the Cyrus log and nothing of the instance
// keeps running. Call Stop when done.
func StartCyrus(opts CyrusOptions) (*Cyrus, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: CyrusOptions.Dir is required")
	}
	if len(opts.Users) == 0 {
		return nil, errors.New("testenv: CyrusOptions.Users is empty")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	root, err := findCyrus(opts.Root)
	if err != nil {
		return nil, err
	}
	owner, err := lookupCyrusOwner()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testenv: CyrusOptions.Dir: %w", err)
	}
	c := &Cyrus{Dir: dir, opts: opts, root: root, owner: owner, ns: owner.root, Separator: ".",
		servername: "testenv-" + strings.ToLower(rand.Text()[:12])}
	if opts.AltNamespace {
		c.Separator = "/"
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 1; ; attempt++ {
		ports, err := pickPorts(2)
		if err != nil {
			return nil, err
		}
		c.IMAPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		c.IMAPSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		err = c.startLocked()
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return nil, err
		}
		opts.Logf("testenv: cyrus start attempt %d: port taken, retrying with new ports", attempt)
	}
	if err := c.loginAll(); err != nil {
		_ = c.stopLocked()
		return nil, fmt.Errorf("%w\n--- cyrus log (%s) ---\n%s", err, c.Dir, tail(c.logLocked(), logTailBytes))
	}
	return c, nil
}

// NewCyrusT starts a Cyrus for the test in a fresh t.TempDir (unless opts.Dir is set),
// logs through t.Logf, and stops it in t.Cleanup; if the test failed, the Cyrus log is
// printed first. A missing installation fails the test with the install hint: it is
// never skipped, because a skipped integration test would count as passing.
func NewCyrusT(t testing.TB, opts CyrusOptions) *Cyrus {
	t.Helper()
	if _, err := findCyrus(opts.Root); err != nil {
		t.Fatalf("%v", err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
		// t.TempDir creates the per-test parent and the directory itself with mode 0700;
		// as root Cyrus runs as the cyrus user and must traverse both.
		for _, p := range []string{filepath.Dir(opts.Dir), opts.Dir} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatalf("testenv: %v", err)
			}
		}
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := StartCyrus(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Registered after t.TempDir's own cleanup, so it runs before the directory is
	// removed (cleanups run last-in first-out).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cyrus log (%s):\n%s", c.Dir, tail(c.Log(), logTailBytes))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

// findCyrus returns cyrus-imapd's private root after checking every binary the harness
// runs.
func findCyrus(root string) (string, error) {
	if root == "" {
		root = os.Getenv("CYRUS_ROOT")
	}
	if root == "" {
		root = DefaultCyrusRoot
	}
	for _, p := range []string{filepath.Join(root, "usr/lib/cyrus/bin/imapd"), filepath.Join(root, "usr/lib/cyrus/bin/idled"),
		cyrusMaster, cyrusCtlCyrusdb, saslpasswd2} {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: %s is missing", ErrNoCyrus, p)
		}
	}
	return root, nil
}

func lookupCyrusOwner() (cyrusOwner, error) {
	var u *user.User
	var err error
	root := os.Geteuid() == 0
	if root {
		u, err = user.Lookup("cyrus")
		if err != nil {
			return cyrusOwner{}, fmt.Errorf("testenv: system user cyrus (created by the cyrus-common package; run scripts/install-cyrus.sh): %w", err)
		}
	} else if u, err = user.Current(); err != nil {
		return cyrusOwner{}, fmt.Errorf("testenv: current user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return cyrusOwner{}, fmt.Errorf("testenv: uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return cyrusOwner{}, fmt.Errorf("testenv: gid of %s: %w", u.Username, err)
	}
	return cyrusOwner{name: u.Username, uid: uid, gid: gid, root: root}, nil
}

func (c *Cyrus) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

// Cyrus's own directories below its configdirectory (what cyrus-makedirs creates).
var cyrusConfigDirs = []string{"db", "socket", "proc", "lock", "log", "msg", "ptclient", "sieve"}

// prepareDir creates the directory layout, the certificate and the sasldb.
func (c *Cyrus) prepareDir() error {
	dirs := []string{"", "run", "run/dev.host", "config", "spool"}
	for _, d := range cyrusConfigDirs {
		dirs = append(dirs, filepath.Join("config", d))
	}
	for _, sub := range dirs {
		p := c.path(sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	if c.owner.root {
		if err := checkTraversableBy(filepath.Dir(c.Dir), "cyrus"); err != nil {
			return err
		}
	}
	certPEM, err := ensureCert(c.path("cert.pem"), c.path("key.pem"))
	if err != nil {
		return err
	}
	c.CertPEM = certPEM
	// The sasldb is rewritten at every StartCyrus, so Users is exactly what can log in.
	sasldb := c.path("config", "sasldb2")
	if err := os.Remove(sasldb); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("testenv: %w", err)
	}
	names := make([]string, 0, len(c.opts.Users))
	for name := range c.opts.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := c.addSASLUser(sasldb, name, c.opts.Users[name]); err != nil {
			return err
		}
	}
	// imapd (the cyrus user) reads the key for TLS and owns every database and message.
	return c.chownTree(c.path("config"), c.path("spool"), c.path("key.pem"))
}

// addSASLUser stores name's password in the sasldb. SASL looks "user@domain" up as user
// "user" in realm "domain" and a bare name in the realm servername, Cyrus's default.
func (c *Cyrus) addSASLUser(sasldb, name, password string) error {
	if strings.ContainsAny(password, "\r\n") || strings.ContainsAny(name, "\r\n \t") || name == "" {
		return fmt.Errorf("testenv: cyrus user %q: names must be non-empty without blanks, passwords single-line", name)
	}
	local, realm := name, c.servername
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		local, realm = name[:i], name[i+1:]
	}
	if !c.opts.AltNamespace && strings.Contains(local, ".") {
		return fmt.Errorf("testenv: cyrus user %q: \".\" is the hierarchy separator of the default namespace; use CyrusOptions.AltNamespace for such names", name)
	}
	args := []string{"-f", sasldb, "-p", "-c", "-u", realm, local}
	run := func(cmd *exec.Cmd) ([]byte, error) {
		cmd.Stdin = strings.NewReader(password + "\n")
		return cmd.CombinedOutput()
	}
	// saslpasswd2 syslogs three "error deleting entry from sasldb" lines per new user.
	// Where a syslog daemon listens, keep them out of the host's log: in a private
	// mount namespace /dev/log is /dev/null, to which syslog(3) cannot connect.
	var out []byte
	var err error = syscall.EPERM
	if c.ns {
		cmd := exec.Command("/bin/sh", append([]string{"-c",
			`[ -e /dev/log ] && mount --bind /dev/null /dev/log; exec "$@"`, "sh", saslpasswd2}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		out, err = run(cmd)
	}
	if errors.Is(err, syscall.EPERM) { // no namespaces: log where syslog(3) goes
		out, err = run(exec.Command(saslpasswd2, args...))
	}
	if err != nil {
		return fmt.Errorf("testenv: saslpasswd2 %s: %w: %s", name, err, out)
	}
	return nil
}

func (c *Cyrus) chownTree(paths ...string) error {
	if !c.owner.root {
		return nil
	}
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, c.owner.uid, c.owner.gid)
		})
		if err != nil {
			return fmt.Errorf("testenv: chown %s: %w", p, err)
		}
	}
	return nil
}

// checkTraversableBy fails early, with a readable message, when the service account
// could not reach dir.
func checkTraversableBy(dir, who string) error {
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("testenv: %s (mode %v) is not traversable by the %s user; chmod o+x it or choose another directory", p, st.Mode().Perm(), who)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (c *Cyrus) imapdConf() string {
	ns := "altnamespace: no\nunixhierarchysep: no\n"
	if c.opts.AltNamespace {
		ns = "altnamespace: yes\nunixhierarchysep: yes\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by internal/testenv (cyrus.go) for one private test instance.
configdirectory: %[1]s/config
defaultpartition: default
partition-default: %[1]s/spool
proc_path: %[1]s/config/proc
mboxname_lockpath: %[1]s/config/lock
idlesocket: %[1]s/config/socket/idle
lmtpsocket: %[1]s/config/socket/lmtp
notifysocket: %[1]s/config/socket/notify
servername: %[2]s
syslog_prefix: %[2]s
cyrus_user: %[3]s
%[4]svirtdomains: userid
autocreate_quota: 0
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[1]s/config/sasldb2
sasl_mech_list: PLAIN LOGIN
tls_server_cert: %[1]s/cert.pem
tls_server_key: %[1]s/key.pem
tls_session_timeout: 0
# imapd sleeps 3 s after every failed LOGIN by default; tests of auth errors need not.
failedloginpause: 0
`, c.Dir, c.servername, c.owner.name, ns)
	return b.String()
}

func (c *Cyrus) cyrusConf() string {
	bin := filepath.Join(c.root, "usr/lib/cyrus/bin")
	conf := c.path("imapd.conf")
	idled := ""
	if !c.opts.NoIdled {
		idled = fmt.Sprintf("  idled cmd=\"%s -C %s\"\n", filepath.Join(bin, "idled"), conf)
	}
	return fmt.Sprintf(`# Written by internal/testenv (cyrus.go) for one private test instance.
START {
  recover cmd="%[1]s -C %[2]s -r"
}
SERVICES {
  imap cmd="%[3]s -C %[2]s" listen="%[4]s" prefork=0
  imaps cmd="%[3]s -s -C %[2]s" listen="%[5]s" prefork=0
}
EVENTS {
}
DAEMON {
%[6]s}
`, cyrusCtlCyrusdb, conf, filepath.Join(bin, "imapd"), c.IMAPAddr, c.IMAPSAddr, idled)
}

// nsInit is PID 1 of the instance's namespaces (see the file comment): it gives the
// instance a private /dev whose "log" is our syslog socket, then runs master and
// forwards SIGTERM to it. It exits when master exits; the kernel then kills whatever is
// left in the PID namespace. If the mounts are refused (a root without CAP_SYS_ADMIN,
// e.g. an unprivileged Docker container) it exits with nsMountFailed.
//
// $1 is the instance directory, the rest master's command line.
const nsInit = `dir=$1; shift
mount --rbind /dev "$dir/run/dev.host" &&
  mount -t tmpfs -o mode=0755,size=64k,nosuid testenv-cyrus-dev /dev || exit 97
ln -s "$dir"/run/dev.host/* /dev/ || exit 1
rm -f /dev/log && ln -s "$dir/run/syslog.sock" /dev/log || exit 1
"$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM
while :; do
  wait $pid
  rc=$?
  kill -0 $pid 2>/dev/null || exit $rc
done
`

// nsMountFailed is nsInit's exit status when it may not mount.
const nsMountFailed = 97

// errNoNamespaces marks a start that failed because namespaces or mounts are refused.
var errNoNamespaces = errors.New("testenv: namespaces or mounts refused")

// startLocked starts Cyrus on the ports in c's addresses and waits until it is ready.
// As root it uses namespaces (see the file comment) unless the system refuses them;
// then it falls back, for the life of c, to running master directly. c.mu must be held
// and c.proc must be nil.
func (c *Cyrus) startLocked() error {
	for _, a := range []string{c.IMAPAddr, c.IMAPSAddr} {
		if portInUse(a) {
			return fmt.Errorf("%w: something already listens on %s", errAddrInUse, a)
		}
	}
	for name, text := range map[string]string{"imapd.conf": c.imapdConf(), "cyrus.conf": c.cyrusConf()} {
		if err := os.WriteFile(c.path(name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("testenv: write %s: %w", name, err)
		}
	}
	err := c.startOnce()
	if c.ns && errors.Is(err, errNoNamespaces) {
		c.opts.Logf("testenv: WARNING %v; running Cyrus without namespaces: its syslog is not captured, and it survives a crash of the test binary", err)
		c.ns = false
		err = c.startOnce()
	}
	return err
}

func (c *Cyrus) startOnce() error {
	logPath, outPath := c.path("cyrus.log"), c.path("master.out")
	logOff, outOff := fileSize(logPath), fileSize(outPath)
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer out.Close() // the child has its own copy of the descriptor

	master := []string{cyrusMaster, "-D", "-C", c.path("imapd.conf"), "-M", c.path("cyrus.conf"),
		"-p", c.path("config", "master.pid")}
	var cmd *exec.Cmd
	if c.ns {
		sink, err := newSyslogSink(c.path("run", "syslog.sock"), logPath)
		if err != nil {
			return err
		}
		c.logs = sink
		cmd = exec.Command("/bin/sh", append([]string{"-c", nsInit, "sh", c.Dir}, master...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:   syscall.CLONE_NEWPID,
			Unshareflags: syscall.CLONE_NEWNS, // Go also makes "/" MS_REC|MS_PRIVATE
			Pdeathsig:    syscall.SIGKILL,
		}
	} else {
		cmd = exec.Command(master[0], master[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	}
	// master's SIGTERM handler does kill(0, SIGTERM): it signals its whole process
	// group. In the test binary's group that would stop every other Cyrus instance of
	// the test binary (and, as non-root, the test binary itself).
	cmd.SysProcAttr.Setsid = true
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		c.closeLogs()
		if c.ns && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL)) {
			return fmt.Errorf("%w: %w", errNoNamespaces, err)
		}
		return fmt.Errorf("testenv: start cyrus: %w", err)
	}
	p := &cyrusProc{cmd: cmd, done: make(chan struct{})}
	if c.ns {
		p.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid))
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.proc = p
	if err := c.waitReady(p, logPath, logOff); err != nil {
		_ = c.stopLocked()
		var exit *exec.ExitError
		if c.ns && errors.As(p.err, &exit) && exit.ExitCode() == nsMountFailed {
			return fmt.Errorf("%w: %s", errNoNamespaces, strings.TrimSpace(readTail(outPath, outOff, logTailBytes)))
		}
		return startError("cyrus", c.Dir, err, outPath, outOff, logPath, logOff)
	}
	c.opts.Logf("testenv: cyrus ready in %v (imap %s, imaps %s, dir %s)",
		time.Since(t0).Round(time.Millisecond), c.IMAPAddr, c.IMAPSAddr, c.Dir)
	return nil
}

// waitReady polls for this instance's greeting until master exits, reports a port it
// could not bind, or cyrusReadyTimeout passes.
func (c *Cyrus) waitReady(p *cyrusProc, logPath string, logOff int64) error {
	deadline := time.NewTimer(cyrusReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	greets := func(line string, ok bool) bool {
		return ok && strings.HasPrefix(line, "* OK ") && strings.Contains(line, " "+c.servername+" ")
	}
	for {
		// Both ports: master binds them one by one and greets on the first before it
		// has found the second taken.
		// master keeps running when it cannot bind a service; it only logs it (and
		// startError classifies the message as errAddrInUse).
		if greets(firstLine(c.IMAPAddr, "a LOGOUT\r\n")) {
			if c.logs != nil {
				c.logs.sync()
			}
			if logs := readTail(logPath, logOff, logTailBytes); strings.Contains(logs, "Address already in use") {
				return errors.New("cyrus could not bind its ports")
			}
			if greets(c.tlsFirstLine()) {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("cyrus exited during start-up: %v", p.err)
		case <-deadline.C:
			return fmt.Errorf("cyrus did not greet on %s within %v", c.IMAPAddr, cyrusReadyTimeout)
		case <-tick.C:
		}
	}
}

// tlsFirstLine reads the greeting on the IMAPS port, checking the certificate.
func (c *Cyrus) tlsFirstLine() (string, bool) {
	d := &net.Dialer{Timeout: greetingTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", c.IMAPSAddr, c.TLSConfig())
	if err != nil {
		return "", false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(greetingTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", false
	}
	_, _ = conn.Write([]byte("a LOGOUT\r\n"))
	return line, true
}

// loginAll logs every user in once, in parallel, so autocreate makes each INBOX now
// rather than inside the test, and a bad sasldb shows at start.
func (c *Cyrus) loginAll() error {
	errs := make(chan error, len(c.opts.Users))
	for name, pw := range c.opts.Users {
		go func() {
			cl, err := LoginAt(c.IMAPAddr, nil, name, pw, nil)
			if err == nil {
				_, err = cl.Select("INBOX", nil).Wait()
				closeClient(cl)
				if err != nil {
					err = fmt.Errorf("testenv: cyrus user %s: INBOX was not created: %w", name, err)
				}
			}
			errs <- err
		}()
	}
	var all []error
	for range c.opts.Users {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// Stop shuts the instance down and returns once every process of it is gone and the
// ports are free; on a stopped instance it is a no-op. It sends SIGTERM (master shuts
// its children down cleanly, measured 6-20 ms) and after cyrusStopGrace kills the
// namespace's init, which makes the kernel kill everything left in it.
func (c *Cyrus) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked()
}

func (c *Cyrus) stopLocked() error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	defer c.closeLogs()
	t0 := time.Now()
	tree := c.procsOf(p) // without namespaces: remember the tree before master reaps it
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.done:
	case <-time.After(cyrusStopGrace):
		c.opts.Logf("testenv: cyrus did not stop within %v after SIGTERM; killing it", cyrusStopGrace)
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(killWait):
			err = fmt.Errorf("testenv: cyrus process %d survived SIGKILL", p.cmd.Process.Pid)
		}
	}
	if p.pidNS == "" { // no PID namespace: hunt down what master left behind
		left := slices.DeleteFunc(tree, func(pid int) bool { return isZombie(pid) })
		if len(left) > 0 {
			err = errors.Join(err, killSurvivors("cyrus", c.opts.Logf, left, func(wait time.Duration) []int {
				deadline := time.Now().Add(wait)
				for {
					left = slices.DeleteFunc(left, func(pid int) bool { return isZombie(pid) })
					if len(left) == 0 || time.Now().After(deadline) {
						return left
					}
					time.Sleep(procPollInterval)
				}
			}))
		}
	} else if left := c.nsProcs(p.pidNS); len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("testenv: cyrus processes %v outlived their namespace", left))
	}
	c.opts.Logf("testenv: cyrus stopped in %v", time.Since(t0).Round(time.Millisecond))
	return err
}

// Restart stops the instance (if running) and starts it again on the same ports with the
// same mail, users and certificate, for testing reconnects.
func (c *Cyrus) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(); err != nil {
		return err
	}
	return startOnSamePorts(c.startLocked)
}

// Running reports whether the instance is started.
func (c *Cyrus) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil
}

// PIDs lists the live processes of the instance (the namespace's init, master, imapd,
// idled), e.g. to check that Stop left nothing behind.
func (c *Cyrus) PIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	return c.procsOf(c.proc)
}

func (c *Cyrus) procsOf(p *cyrusProc) []int {
	if p.pidNS != "" {
		return c.nsProcs(p.pidNS)
	}
	return descendants(p.cmd.Process.Pid)
}

// nsProcs lists the live processes in the PID namespace ns ("pid:[inode]").
func (c *Cyrus) nsProcs(ns string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/pid")); err == nil && l == ns && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// descendants returns root and every live process below it.
func descendants(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentPID(pid); ppid > 0 {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if !isZombie(pid) {
			out = append(out, pid)
		}
		queue = append(queue, children[pid]...)
	}
	return out
}

// parentPID reads the ppid field of /proc/PID/stat (the second after the comm field).
func parentPID(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// Log returns everything the instance logged so far, over all restarts: master's
// stdout/stderr followed by the syslog messages of master, imapd and idled.
func (c *Cyrus) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logLocked()
}

func (c *Cyrus) logLocked() string {
	if c.logs != nil {
		c.logs.sync()
	}
	var b strings.Builder
	for _, p := range []string{c.path("master.out"), c.path("cyrus.log")} {
		if data, err := os.ReadFile(p); err == nil {
			b.Write(data)
		}
	}
	if !c.ns {
		b.WriteString("(testenv: Cyrus's syslog is captured only in namespaces, i.e. as root with CAP_SYS_ADMIN)\n")
	}
	return b.String()
}

func (c *Cyrus) closeLogs() {
	if c.logs != nil {
		c.logs.close()
		c.logs = nil
	}
}

// TLSConfig returns a client configuration that trusts exactly this instance's
// certificate, for IMAPSAddr or STARTTLS on IMAPAddr.
func (c *Cyrus) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// FolderName builds the server's name of a personal folder from its path components:
// FolderName("Projects", "2024") is "INBOX.Projects.2024" by default and
// "Projects/2024" with AltNamespace; FolderName() is "INBOX".
func (c *Cyrus) FolderName(parts ...string) string {
	if len(parts) == 0 {
		return "INBOX"
	}
	name := strings.Join(parts, c.Separator)
	if c.opts.AltNamespace {
		return name
	}
	return "INBOX" + c.Separator + name
}

// Append stores raw in user's folder ("" means INBOX), creating the folder if it does
// not exist, and returns the new message's UID. folder is in the server's own naming
// (see FolderName). It uses its own short-lived connection; IDLE clients see the
// message ~50 ms later (with idled).
func (c *Cyrus) Append(user, password, folder string, raw []byte) (uint32, error) {
	return AppendTo(c.IMAPAddr, nil, user, password, folder, raw)
}

// CreateFolder creates and subscribes name, in the server's own naming (see
// FolderName). A folder that already exists is not an error.
func (c *Cyrus) CreateFolder(user, password, name string) error {
	return CreateFolderAt(c.IMAPAddr, nil, user, password, name)
}

// syslogSink receives syslog datagrams on a unix socket and appends them, without the
// "<priority>" prefix, to a file.
type syslogSink struct {
	conn  *net.UnixConn
	dir   *os.File // the socket's directory, open so that addr stays valid
	addr  string   // "/proc/self/fd/N/name": short enough for sun_path whatever Dir is
	path  string
	done  chan struct{}
	seq   atomic.Uint64
	mu    sync.Mutex // guards out, waits; serializes writes
	out   *os.File
	waits map[uint64]chan struct{}
}

// syncMarker starts the datagrams sync sends to itself; no syslog message starts with NUL.
const syncMarker = "\x00testenv-sync-"

func newSyslogSink(sockPath, logPath string) (*syslogSink, error) {
	if err := os.Remove(sockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	// sun_path holds 108 bytes, which t.TempDir of a long test name exceeds; the
	// directory's /proc/self/fd link is always short.
	dir, err := os.Open(filepath.Dir(sockPath))
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(sockPath))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("testenv: cyrus syslog socket: %w", err)
	}
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		// The cyrus user must be able to send to it.
		err = os.Chmod(sockPath, 0o666)
	}
	if err != nil {
		conn.Close()
		dir.Close()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	s := &syslogSink{conn: conn, dir: dir, addr: addr, path: sockPath, out: out,
		done: make(chan struct{}), waits: map[uint64]chan struct{}{}}
	go s.run()
	return s, nil
}

func (s *syslogSink) run() {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		s.write(buf[:n])
	}
}

func (s *syslogSink) write(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rest, ok := bytes.CutPrefix(msg, []byte(syncMarker)); ok {
		seq, _ := strconv.ParseUint(string(rest), 10, 64)
		if ch := s.waits[seq]; ch != nil {
			close(ch)
			delete(s.waits, seq)
		}
		return
	}
	if len(msg) > 0 && msg[0] == '<' {
		if i := bytes.IndexByte(msg, '>'); i > 0 && i < 5 {
			msg = msg[i+1:]
		}
	}
	msg = bytes.TrimRight(msg, "\n\x00")
	if s.out != nil {
		_, _ = s.out.Write(append(msg, '\n'))
	}
}

// sync returns once every datagram queued before the call is in the file: it sends a
// marker to the socket and waits until the reader gets to it (datagrams are queued in
// arrival order).
func (s *syslogSink) sync() {
	seq := s.seq.Add(1)
	ch := make(chan struct{})
	s.mu.Lock()
	s.waits[seq] = ch
	s.mu.Unlock()
	if _, err := s.conn.WriteToUnix([]byte(syncMarker+strconv.FormatUint(seq, 10)), &net.UnixAddr{Name: s.addr, Net: "unixgram"}); err == nil {
		select {
		case <-ch:
			return
		case <-s.done:
		case <-time.After(time.Second):
		}
	}
	s.mu.Lock()
	delete(s.waits, seq)
	s.mu.Unlock()
}

// close writes what is still queued, stops the reader and closes everything.
func (s *syslogSink) close() {
	s.sync()
	s.conn.Close()
	<-s.done
	s.dir.Close()
	_ = os.Remove(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.Close()
	s.out = nil
}
