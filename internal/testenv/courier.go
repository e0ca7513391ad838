// SPDX-License-Identifier: Apache-2.0

package testenv

// Courier: a private Courier-IMAP 5 instance (IMAP with STARTTLS, IMAPS) on random
// loopback ports, for testing against another common Maildir IMAP server and its quirks
// (listed at the Courier type; courier_test.go asserts them).
//
// Courier cannot be pointed at another configuration directory: /etc/courier (userdb,
// authdaemonrc) and the authdaemon socket /run/courier/authdaemon/socket are compiled
// in. So every instance runs in its own mount and PID namespace (clone(2) with
// CLONE_NEWNS|CLONE_NEWPID, which needs root): a generated bash script, PID 1 of the
// namespace, bind-mounts DIR/etc over /etc/courier and DIR/run over /run/courier, gives
// the namespace a private /dev whose /dev/log is a datagram socket this process reads,
// starts authdaemond (module authuserdb) and two couriertcpd listeners exactly as
// Debian's /usr/lib/courier/imapd and imapd-ssl do (imaplogin + imapd Maildir; the
// implicit-TLS one through couriertls). Killing PID 1 makes the kernel kill every
// process of the namespace, including the gam_server that imapd spawns, so Stop
// cannot leave anything behind, and several instances (parallel test packages) never
// see each other's files, sockets or processes.
//
// The binaries: courier-authdaemon, courier-authlib-userdb, courier-base and gamin are
// ordinary Debian packages; courier-imap itself conflicts with dovecot-imapd
// (Conflicts: imap-server), so scripts/install-courier.sh unpacks it into a private root
// (COURIER_ROOT, default /opt/emaillistener-test/courier) without registering it.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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

	"github.com/emersion/go-imap/v2/imapclient"
)

const (
	// courierDefaultRoot is where scripts/install-courier.sh unpacks courier-imap;
	// COURIER_ROOT overrides it (for both).
	courierDefaultRoot = "/opt/emaillistener-test/courier"
	// courierReadyTimeout bounds one start; a healthy start takes 60-120 ms.
	courierReadyTimeout = 10 * time.Second
	// courierStopGrace is how long Stop lets PID 1 of the namespace shut the servers
	// down after SIGTERM (they exit within a few ms) before it SIGKILLs it, which makes
	// the kernel kill the rest of the namespace.
	courierStopGrace = time.Second
)

// ErrNoCourier means a part of the Courier installation is missing.
var ErrNoCourier = errors.New("testenv: Courier-IMAP not installed; run scripts/install-courier.sh as root (apt-installs courier-base, courier-authdaemon, courier-authlib-userdb and gamin, and unpacks courier-imap into " + courierDefaultRoot + " without replacing dovecot-imapd)")

// CourierOptions configures StartCourier.
type CourierOptions struct {
	// Dir holds all state of the instance (required): configuration (DIR/etc, mounted
	// over /etc/courier inside the instance), sockets (DIR/run, mounted over
	// /run/courier), DIR/log/courier.log, the certificate and the Maildirs
	// (DIR/mail/<user>/Maildir). An empty directory, or one a previous instance used
	// (its mail and certificate are kept).
	Dir string
	// Users maps user name to password (required, at least one). Every user gets a
	// Maildir (userdb entry with uid 0, like a system account with home DIR/mail/<user>).
	Users map[string]string
	// EnhancedIdle sets IMAP_ENHANCEDIDLE=1: IDLE then reports new mail within
	// 0.06-1.1 s (gamin, measured). The default, false, is Debian's shipped setting:
	// IDLE re-scans the folder only every IMAP_IDLE_TIMEOUT = 60 s, as on a server left
	// at Debian's defaults.
	EnhancedIdle bool
	// Logf receives progress messages (start/stop durations). Nil discards them.
	Logf func(format string, args ...any)
}

// Courier is a running (or stopped) private Courier-IMAP instance. Its exported fields
// are fixed for the life of the value: Restart reuses ports, directory and certificate.
// Methods are safe for concurrent use; Stop and Restart are serialized.
//
// Behaviour tests meet (Courier-IMAP 5.0.13, Debian 12; see courier_test.go):
//   - Folders are "INBOX.<name>" with "." as separator (Separator, FolderName); INBOX is
//     listed in the middle of LIST results, not first.
//   - SELECT/EXAMINE answer without "* OK [UIDNEXT n]"; STATUS (UIDNEXT) works.
//   - UIDVALIDITY is stored (courierimapuiddb) only by a read-write SELECT, CREATE or a
//     stored message; until then (a fresh INBOX that is only EXAMINEd or STATUSed) it
//     follows the clock and changes every second, i.e. in practically every session.
//   - CREATE of an existing folder is a plain NO (no [ALREADYEXISTS]); a failed LOGIN
//     is answered after 5 s.
//   - Without EnhancedIdle, IDLE notices new mail only every 60 s.
//   - Before STARTTLS only LOGIN is offered (no AUTH=PLAIN); after it AUTH=PLAIN too.
//   - Debian's connection limits apply on each port: MAXDAEMONS=40 connections in total
//     and MAXPERIP=20 per client IP (every test client comes from 127.0.0.1).
type Courier struct {
	Dir       string // instance directory (absolute)
	IMAPAddr  string // plain IMAP (STARTTLS offered), 127.0.0.1:port
	IMAPSAddr string // implicit-TLS IMAP (couriertls)
	CertPEM   []byte // the server's self-signed certificate (localhost, 127.0.0.1, ::1)
	Separator string // hierarchy separator: "."

	opts CourierOptions
	bins courierBins
	// gamID is GAM_CLIENT_ID for the instance: gamin's socket is an abstract unix socket
	// named after uid and this ID, and abstract sockets are per network namespace, which
	// all instances share with the host; without it imapd of one instance would talk to
	// (and lose, at Stop) another instance's gam_server.
	gamID string
	// courierUID/GID: the courier system user (courier-base), as which imaplogin and
	// couriertls handle connections before login.
	courierUID, courierGID int

	mu   sync.Mutex   // serializes start/stop; guards proc
	proc *courierProc // nil while stopped

	seedSeq atomic.Uint64 // makes Seed file names unique within this process
}

// courierProc is one run of the namespace: PID 1 (a bash script) and the syslog reader.
type courierProc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed once Wait returned
	err    error         // Wait's result; read only after done is closed
	pidNS  string        // readlink /proc/PID/ns/pid of PID 1, identifies the instance's processes
	syslog *net.UnixConn
	logged chan struct{} // closed when the syslog reader returned
}

// courierBins are the files an instance needs.
type courierBins struct {
	root        string // private root with courier-imap
	imapd       string
	imaplogin   string
	confIMAPD   string // Debian's /etc/courier/imapd, from the package
	confSSL     string // Debian's /etc/courier/imapd-ssl
	couriertcpd string
	couriertls  string
	authdaemond string
	makeuserdb  string
	bash        string
}

// findCourier locates the installation; the error lists everything that is missing.
func findCourier() (courierBins, error) {
	root := os.Getenv("COURIER_ROOT")
	if root == "" {
		root = courierDefaultRoot
	}
	b := courierBins{
		root:        root,
		imapd:       filepath.Join(root, "usr/bin/imapd"),
		imaplogin:   filepath.Join(root, "usr/lib/courier/courier/imaplogin"),
		confIMAPD:   filepath.Join(root, "etc/courier/imapd"),
		confSSL:     filepath.Join(root, "etc/courier/imapd-ssl"),
		couriertcpd: "/usr/sbin/couriertcpd",
		couriertls:  "/usr/bin/couriertls",
		authdaemond: "/usr/lib/courier/courier-authlib/authdaemond",
		makeuserdb:  "/usr/sbin/makeuserdb",
		bash:        "/bin/bash",
	}
	var missing []string
	for _, p := range []string{b.imapd, b.imaplogin, b.couriertcpd, b.couriertls, b.authdaemond, b.makeuserdb, b.bash, "/usr/libexec/gam_server"} {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	for _, p := range []string{b.confIMAPD, b.confSSL} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	// The mount points of the bind mounts.
	if st, err := os.Stat("/etc/courier"); err != nil || !st.IsDir() {
		missing = append(missing, "/etc/courier/")
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("%w (missing: %s)", ErrNoCourier, strings.Join(missing, ", "))
	}
	return b, nil
}

// lookupCourierUser returns the uid and gid of the courier system user.
func lookupCourierUser() (int, int, error) {
	u, err := user.Lookup("courier")
	if err != nil {
		return 0, 0, fmt.Errorf("%w (system user courier: %w)", ErrNoCourier, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("testenv: uid of courier: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("testenv: gid of courier: %w", err)
	}
	return uid, gid, nil
}

// StartCourier prepares opts.Dir, starts Courier-IMAP on two free loopback ports and
// returns once both greet. It needs root (private mount and PID namespaces). On failure
// the error includes the instance log and nothing of the instance keeps running. Call
// Stop when done.
func StartCourier(opts CourierOptions) (*Courier, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: CourierOptions.Dir is required")
	}
	if len(opts.Users) == 0 {
		return nil, errors.New("testenv: CourierOptions.Users must name at least one user")
	}
	for u, pw := range opts.Users {
		// userdb is "name<TAB>field=value|…", one user per line.
		if err := validUserName(u); err != nil || strings.ContainsAny(u, "|=") {
			return nil, fmt.Errorf("testenv: invalid Courier user name %q", u)
		}
		if pw == "" {
			return nil, fmt.Errorf("testenv: CourierOptions.Users[%q]: empty password", u)
		}
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	bins, err := findCourier()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("testenv: Courier needs root: its /etc/courier and authdaemon socket paths are compiled in, so each instance runs in a private mount namespace")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("testenv: CourierOptions.Dir: %w", err)
	}
	c := &Courier{Dir: dir, Separator: ".", opts: opts, bins: bins,
		gamID: "testenv-courier-" + strings.ToLower(rand.Text()[:12])}
	if c.courierUID, c.courierGID, err = lookupCourierUser(); err != nil {
		return nil, err
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
			return c, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return nil, err
		}
		opts.Logf("testenv: courier start attempt %d: port taken, retrying with new ports", attempt)
	}
}

// NewCourierT starts a Courier for the test in a fresh t.TempDir (unless o.Dir is set),
// logs through t.Logf and stops it in t.Cleanup; if the test failed, the instance log
// is printed first. A missing installation (or not being root) fails the test with the
// install hint: it is never skipped, because a skipped integration test would count as
// passing.
func NewCourierT(t testing.TB, o CourierOptions) *Courier {
	t.Helper()
	if _, err := findCourier(); err != nil {
		t.Fatalf("%v", err)
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	c, err := StartCourier(o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Registered after t.TempDir's cleanup, so it runs before the directory is removed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("courier log (%s):\n%s", c.Dir, tail(c.Log(), logTailBytes))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

func (c *Courier) etcDir() string     { return filepath.Join(c.Dir, "etc") }
func (c *Courier) runDir() string     { return filepath.Join(c.Dir, "run") }
func (c *Courier) logFile() string    { return filepath.Join(c.Dir, "log", "courier.log") }
func (c *Courier) scriptFile() string { return filepath.Join(c.Dir, "namespace.sh") }
func (c *Courier) devlogPath() string { return filepath.Join(c.runDir(), "devlog") }

// home and maildir of a user (userdb home= and mail=).
func (c *Courier) home(user string) string    { return filepath.Join(c.Dir, "mail", user) }
func (c *Courier) maildir(user string) string { return filepath.Join(c.home(user), "Maildir") }

// prepareDir writes everything that does not depend on the ports: directories,
// certificate, userdb (compiled with makeuserdb), authdaemonrc, Maildirs and the
// namespace script.
func (c *Courier) prepareDir() error {
	for _, sub := range []string{"", "etc", "etc/shared", "run", "run/authdaemon", "log", "mail", "ns", "ns/hostdev"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, sub), 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	// As in the Debian package: /run/courier/authdaemon is courier:courier 0750.
	if err := os.Chmod(filepath.Join(c.runDir(), "authdaemon"), 0o750); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := os.Chown(filepath.Join(c.runDir(), "authdaemon"), c.courierUID, c.courierGID); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	certPEM, err := ensureCert(filepath.Join(c.Dir, "cert.pem"), filepath.Join(c.Dir, "key.pem"))
	if err != nil {
		return err
	}
	c.CertPEM = certPEM
	if err := c.writeTLSFiles(); err != nil {
		return err
	}
	if err := c.writeUserdb(); err != nil {
		return err
	}
	for u := range c.opts.Users {
		for _, d := range []string{c.home(u), c.maildir(u), filepath.Join(c.maildir(u), "cur"),
			filepath.Join(c.maildir(u), "new"), filepath.Join(c.maildir(u), "tmp")} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("testenv: %w", err)
			}
		}
	}
	// Debian's authdaemonrc with the userdb module only. DEBUG_LOGIN=1 logs why a login
	// failed (2 would log passwords).
	rc := `# generated by internal/testenv/courier.go
authmodulelist="authuserdb"
daemons=5
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=1
DEFAULTOPTIONS=""
LOGGEROPTS=""
`
	if err := os.WriteFile(filepath.Join(c.etcDir(), "authdaemonrc"), []byte(rc), 0o640); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return os.WriteFile(c.scriptFile(), []byte(courierScript), 0o755)
}

// writeTLSFiles writes DIR/etc/imapd.pem (certificate and key in one file, as Debian's
// /etc/courier/imapd.pem) and dhparams.pem, both root:courier 0640: imaplogin switches
// to the courier user before it runs couriertls for STARTTLS, and couriertls -user=courier
// on the IMAPS port reads them as that user too. The servers use the /etc/courier/...
// paths, which inside the namespace lead through the bind mount: the courier user need
// not traverse DIR's parents (t.TempDir makes them 0700).
func (c *Courier) writeTLSFiles() error {
	cert, err := os.ReadFile(filepath.Join(c.Dir, "cert.pem"))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	key, err := os.ReadFile(filepath.Join(c.Dir, "key.pem"))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	files := map[string][]byte{"imapd.pem": append(key, cert...)}
	// DH parameters for DHE suites, generated by courier-base at installation; ECDHE
	// suites work without them.
	if dh, err := os.ReadFile("/etc/courier/dhparams.pem"); err == nil {
		files["dhparams.pem"] = dh
	}
	for name, data := range files {
		p := filepath.Join(c.etcDir(), name)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.Chmod(p, 0o640); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.Chown(p, 0, c.courierGID); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	return nil
}

// writeUserdb writes DIR/etc/userdb and compiles it into userdb.dat and
// userdbshadow.dat (makeuserdb refuses a userdb with group or world permissions).
// Passwords are stored as {SHA256}, one of authlib's hash formats, so no crypt(3) or
// userdbpw is needed.
func (c *Courier) writeUserdb() error {
	users := make([]string, 0, len(c.opts.Users))
	for u := range c.opts.Users {
		users = append(users, u)
	}
	slices.Sort(users)
	var b strings.Builder
	for _, u := range users {
		sum := sha256.Sum256([]byte(c.opts.Users[u]))
		fmt.Fprintf(&b, "%s\tuid=0|gid=0|home=%s|mail=%s|systempw={SHA256}%s\n",
			u, c.home(u), c.maildir(u), base64.StdEncoding.EncodeToString(sum[:]))
	}
	userdb := filepath.Join(c.etcDir(), "userdb")
	if err := os.WriteFile(userdb, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("testenv: write userdb: %w", err)
	}
	if err := os.Chmod(userdb, 0o600); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	out, err := exec.Command(c.bins.makeuserdb, "-f", userdb).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testenv: makeuserdb: %w: %s", err, out)
	}
	return nil
}

// writeConfig writes DIR/etc/imapd and imapd-ssl: Debian's files from the package
// followed by this instance's overrides (the files are sourced by the shell, so later
// assignments win).
func (c *Courier) writeConfig() error {
	enhanced := "0"
	if c.opts.EnhancedIdle {
		enhanced = "1"
	}
	dh := "/etc/courier/dhparams.pem"
	if _, err := os.Stat(filepath.Join(c.etcDir(), "dhparams.pem")); err != nil {
		dh = ""
	}
	files := []struct{ name, base, extra string }{
		{"imapd", c.bins.confIMAPD, fmt.Sprintf(`
# --- internal/testenv/courier.go ---
ADDRESS=127.0.0.1
PORT=%d
PIDFILE=/run/courier/imapd.pid
IMAP_ENHANCEDIDLE=%s
IMAP_SHAREDINDEXFILE=/etc/courier/shared/index
`, portOf(c.IMAPAddr), enhanced)},
		{"imapd-ssl", c.bins.confSSL, fmt.Sprintf(`
# --- internal/testenv/courier.go ---
SSLADDRESS=127.0.0.1
SSLPORT=%d
SSLPIDFILE=/run/courier/imapd-ssl.pid
IMAPDSTARTTLS=YES
TLS_CERTFILE=/etc/courier/imapd.pem
TLS_DHPARAMS=%s
TLS_CACHEFILE=
`, portOf(c.IMAPSAddr), dh)},
	}
	for _, f := range files {
		base, err := os.ReadFile(f.base)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.WriteFile(filepath.Join(c.etcDir(), f.name), append(base, f.extra...), 0o644); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	return nil
}

// courierScript is PID 1 of an instance's mount and PID namespace. $1 is DIR, $2 the
// private root with courier-imap. It exits 111 when it cannot set the namespace up, 0
// after SIGTERM, 1 when a server exited on its own.
const courierScript = `#!/bin/bash
# Generated by internal/testenv/courier.go; runs as PID 1 of a private mount and PID
# namespace, so everything it starts dies with it.
D=$1
R=$2
say() { printf 'testenv-courier: %s\n' "$*" >&2; }
die() { say "$*"; exit 111; }

mount --make-rprivate / || die "cannot make the mount namespace private"
mount --bind "$D/etc" /etc/courier || die "cannot bind $D/etc over /etc/courier"
[ -d /run/courier ] || mkdir -p /run/courier || die "cannot create /run/courier"
mount --bind "$D/run" /run/courier || die "cannot bind $D/run over /run/courier"

# A private /dev whose log is our syslog socket (Courier's courierlogger, PAM and gamin
# log only through syslog(3); the servers here log to stderr). The host's /dev stays
# untouched: a tmpfs over /dev in this namespace, with the few device nodes a server
# needs bind-mounted from the original.
private_dev() {
  local h=$D/ns/hostdev n
  mount --rbind /dev "$h" || return 1
  mount -t tmpfs -o mode=0755,nosuid,size=64k testenv-courier-dev /dev || { umount -l "$h"; return 1; }
  for n in null zero full random urandom tty ptmx; do
    [ -e "$h/$n" ] || continue
    : >"/dev/$n" && mount --bind "$h/$n" "/dev/$n" || say "WARNING: no /dev/$n"
  done
  for n in pts shm mqueue; do
    [ -d "$h/$n" ] || continue
    mkdir "/dev/$n" && mount --rbind "$h/$n" "/dev/$n" || say "WARNING: no /dev/$n"
  done
  ln -s /proc/self/fd /dev/fd
  ln -s /proc/self/fd/0 /dev/stdin
  ln -s /proc/self/fd/1 /dev/stdout
  ln -s /proc/self/fd/2 /dev/stderr
  ln -s "$D/run/devlog" /dev/log
  umount -l "$h"
}
private_dev || say "WARNING: no private /dev/log; syslog messages are lost"

# authdaemond in the foreground (Debian's /usr/sbin/authdaemond wraps it in
# courierlogger, which would send its log to syslog).
rm -f /run/courier/authdaemon/socket* /run/courier/authdaemon/pid*
(set -a; . /etc/courier/authdaemonrc; exec /usr/lib/courier/courier-authlib/authdaemond) &
auth=$!
i=0
until [ -S /run/courier/authdaemon/socket ]; do
  kill -0 "$auth" 2>/dev/null || die "authdaemond exited"
  i=$((i + 1))
  [ "$i" -le 2000 ] || die "authdaemond did not create its socket within 10 s"
  sleep 0.005
done

# Plain IMAP with STARTTLS, as Debian's /usr/lib/courier/imapd start (minus
# courierlogger and the access file).
(
  set -a
  . /etc/courier/imapd-ssl
  . /etc/courier/imapd
  IMAP_STARTTLS=$IMAPDSTARTTLS
  set +a
  umask "$IMAP_UMASK"
  [ -z "$IMAP_ULIMITD" ] || ulimit -v "$IMAP_ULIMITD"
  exec /usr/sbin/couriertcpd -address="$ADDRESS" -maxprocs="$MAXDAEMONS" -maxperip="$MAXPERIP" \
    $TCPDOPTS "$PORT" "$R/usr/lib/courier/courier/imaplogin" "$R/usr/bin/imapd" "$MAILDIRPATH"
) &

# Implicit TLS, as Debian's /usr/lib/courier/imapd-ssl start.
(
  set -a
  . /etc/courier/imapd
  . /etc/courier/imapd-ssl
  IMAP_TLS=1
  set +a
  umask "$IMAP_UMASK"
  [ -z "$IMAP_ULIMITD" ] || ulimit -v "$IMAP_ULIMITD"
  exec /usr/sbin/couriertcpd -address="$SSLADDRESS" -maxprocs="$MAXDAEMONS" -maxperip="$MAXPERIP" \
    $TCPDOPTS "$SSLPORT" "$COURIERTLS" -server -tcpd -user=courier \
    "$R/usr/lib/courier/courier/imaplogin" "$R/usr/bin/imapd" "$MAILDIRPATH"
) &

# SIGTERM: stop every process of the namespace (kill -1 spares only PID 1 itself) and
# give them a second to go; whatever is left dies with PID 1.
stop() {
  trap '' TERM INT HUP
  kill -TERM -1 2>/dev/null
  local i=0
  while kill -s 0 -- -1 2>/dev/null && [ "$i" -lt 50 ]; do
    sleep 0.02
    i=$((i + 1))
  done
  exit 0
}
trap stop TERM INT HUP
wait -n
say "a Courier server process exited on its own; stopping the instance"
exit 1
`

// startLocked starts the namespace on the ports in c's addresses and waits until both
// ports greet. c.mu must be held and c.proc must be nil.
func (c *Courier) startLocked() error {
	for _, a := range []string{c.IMAPAddr, c.IMAPSAddr} {
		if portInUse(a) {
			return fmt.Errorf("%w: something already listens on %s", errAddrInUse, a)
		}
	}
	if err := c.writeConfig(); err != nil {
		return err
	}
	logOff := fileSize(c.logFile())
	logf, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer logf.Close() // the child has its own copy; the syslog reader opens its own
	syslog, err := courierListenDevlog(c.devlogPath())
	if err != nil {
		return err
	}
	logged := make(chan struct{})
	go courierReadSyslog(syslog, c.logFile(), logged)

	cmd := exec.Command(c.bins.bash, c.scriptFile(), c.Dir, c.bins.root)
	cmd.Dir = c.Dir
	// Debian starts the servers with env -i; GAM_CLIENT_ID gives the instance its own
	// gam_server.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GAM_CLIENT_ID=" + c.gamID}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		// Its own session and process group: couriertcpd and authdaemond signal their
		// whole process group when they stop, and without this that group is the test
		// binary's (and go test's): the first Stop killed them all.
		Setsid: true,
		// If the test binary dies (panic, -timeout), PID 1 dies and takes the namespace.
		Pdeathsig: syscall.SIGKILL,
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		syslog.Close()
		<-logged
		return fmt.Errorf("testenv: start courier namespace: %w", err)
	}
	p := &courierProc{cmd: cmd, done: make(chan struct{}), syslog: syslog, logged: logged}
	p.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid))
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.proc = p
	if err := c.waitReady(p); err != nil {
		_ = c.stopLocked()
		logs := readTail(c.logFile(), logOff, logTailBytes)
		if strings.Contains(logs, "Address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return fmt.Errorf("testenv: %w\n--- courier log (%s) ---\n%s", err, c.Dir, logs)
	}
	c.opts.Logf("testenv: courier ready in %v (imap %s, imaps %s, dir %s)",
		time.Since(t0).Round(time.Millisecond), c.IMAPAddr, c.IMAPSAddr, c.Dir)
	return nil
}

// waitReady polls until the plain port greets and the TLS port completes a handshake
// with this instance's certificate and greets, or p exits, or the timeout passes.
// authdaemond is up before the listeners start, so a greeting means logins work.
func (c *Courier) waitReady(p *courierProc) error {
	deadline := time.NewTimer(courierReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	plain, secure := false, false
	for {
		if !plain {
			line, ok := firstLine(c.IMAPAddr, "")
			plain = ok && courierGreeting(line)
		}
		if plain && !secure {
			secure = c.tlsGreets()
		}
		if plain && secure {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("courier namespace exited during start-up: %v", p.err)
		case <-deadline.C:
			return fmt.Errorf("courier did not greet on %s and %s within %v", c.IMAPAddr, c.IMAPSAddr, courierReadyTimeout)
		case <-tick.C:
		}
	}
}

func courierGreeting(line string) bool {
	return strings.HasPrefix(line, "* OK ") && strings.Contains(line, "Courier-IMAP")
}

func (c *Courier) tlsGreets() bool {
	d := &net.Dialer{Timeout: greetingTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", c.IMAPSAddr, c.TLSConfig())
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(greetingTimeout))
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	return courierGreeting(string(buf[:n]))
}

// courierListenDevlog creates the datagram socket that is /dev/log inside the namespace.
// sun_path holds at most 107 bytes and t.TempDir paths can be longer, so a long path
// is bound through /proc/self/fd/N/<name> of its directory.
func courierListenDevlog(path string) (*net.UnixConn, error) {
	_ = os.Remove(path)
	name := path
	if len(path) > 100 {
		dir, err := os.Open(filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		defer dir.Close()
		name = fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testenv: syslog socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: name}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("testenv: bind syslog socket %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileConn dups it
	conn, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("testenv: syslog socket: %w", err)
	}
	// imapd logs as the mail user; as uid 0 that is root, but keep it open to all.
	if err := os.Chmod(path, 0o666); err != nil {
		conn.Close()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	return conn.(*net.UnixConn), nil
}

// courierReadSyslog appends every datagram ("<PRI>Mmm dd hh:mm:ss tag[pid]: msg") as a line
// to the log file until conn is closed.
func courierReadSyslog(conn *net.UnixConn, logFile string, done chan<- struct{}) {
	defer close(done)
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		line := strings.TrimRight(string(buf[:n]), "\x00\n")
		_, _ = f.WriteString("syslog: " + line + "\n")
	}
}

// Stop shuts the instance down and returns once every process of its namespace is gone
// and the ports are free; on a stopped instance it is a no-op. SIGTERM to PID 1 makes
// it SIGTERM every other process of the namespace (they exit within milliseconds);
// after courierStopGrace it is SIGKILLed, and the kernel kills whatever is left of the
// namespace with it. Measured: 10-30 ms.
func (c *Courier) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked()
}

func (c *Courier) stopLocked() error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	grace := time.NewTimer(courierStopGrace)
	defer grace.Stop()
	var err error
	select {
	case <-p.done:
	case <-grace.C:
		c.opts.Logf("testenv: courier did not stop within %v after SIGTERM; sending SIGKILL", courierStopGrace)
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(killWait):
			err = fmt.Errorf("testenv: courier namespace init %d survived SIGKILL", p.cmd.Process.Pid)
		}
	}
	// PID 1's exit makes the kernel kill and reap the rest of the namespace before
	// Wait returns; check anyway, a leftover would hold the ports.
	if left := courierWaitNSGone(p.pidNS, killWait); len(left) > 0 && err == nil {
		err = fmt.Errorf("testenv: courier processes %v outlived their namespace", left)
	}
	p.syslog.Close()
	<-p.logged
	c.opts.Logf("testenv: courier stopped in %v", time.Since(t0).Round(time.Millisecond))
	return err
}

// courierNSProcs lists the live (non-zombie) processes in the PID namespace ns (the
// readlink of /proc/PID/ns/pid, "pid:[inode]").
func courierNSProcs(ns string) []int {
	if ns == "" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err == nil && l == ns && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func courierWaitNSGone(ns string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := courierNSProcs(ns)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(procPollInterval)
	}
}

// Restart stops the instance (if running) and starts it again on the same ports with
// the same mail, users and certificate, for testing reconnects.
func (c *Courier) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(); err != nil {
		return err
	}
	return startOnSamePorts(c.startLocked)
}

// Running reports whether the instance is started and its namespace is alive.
func (c *Courier) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil && !isClosed(c.proc.done)
}

// PIDs lists the live processes of the instance (its whole PID namespace: the script,
// authdaemond, couriertcpd, imaplogin/imapd/couriertls per connection, gam_server).
func (c *Courier) PIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	return courierNSProcs(c.proc.pidNS)
}

// Log returns everything the instance logged so far, over all restarts: the stderr of
// the namespace script, authdaemond, couriertcpd, imaplogin and imapd (logins,
// "LOGIN, user=…", errors), and lines starting "syslog: " for what arrived on the
// namespace's /dev/log.
func (c *Courier) Log() string {
	data, _ := os.ReadFile(c.logFile())
	return string(data)
}

// TLSConfig returns a client configuration that trusts exactly this instance's
// certificate, for IMAPSAddr or STARTTLS on IMAPAddr.
func (c *Courier) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Client dials the plain IMAP port and logs in as user. The caller owns the client and
// must Close it (Logout first for a clean server log).
func (c *Courier) Client(user, password string) (*imapclient.Client, error) {
	return LoginAt(c.IMAPAddr, nil, user, password, nil)
}

// ClientWithOptions is Client with imapclient options, e.g. an UnilateralDataHandler
// to observe IDLE updates. opts may be nil.
func (c *Courier) ClientWithOptions(user, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	return LoginAt(c.IMAPAddr, nil, user, password, opts)
}

// FolderName builds a folder name in Courier's namespace: FolderName("a", "b") is
// "INBOX.a.b", FolderName() is "INBOX"; a leading "INBOX" part is not repeated.
func (c *Courier) FolderName(parts ...string) string {
	if len(parts) > 0 && strings.EqualFold(parts[0], "INBOX") {
		parts = parts[1:]
	}
	return strings.Join(append([]string{"INBOX"}, parts...), c.Separator)
}

// Append stores raw in user's folder ("" means INBOX; otherwise a full name such as
// FolderName("Projects")), creating and subscribing the folder if it does not exist,
// and returns the new message's UID (APPENDUID). It uses its own short-lived
// connection, so it does not disturb the clients under test.
func (c *Courier) Append(user, password, folder string, raw []byte) (uint32, error) {
	return AppendTo(c.IMAPAddr, nil, user, password, folder, raw)
}

// CreateFolder creates and subscribes name (a full name, e.g. FolderName("a", "b")).
// A folder that already exists is not an error (Courier answers CREATE of an existing
// folder with a plain NO, so the folder list is asked first).
func (c *Courier) CreateFolder(user, password, name string) error {
	return CreateFolderAt(c.IMAPAddr, nil, user, password, name)
}

// Seed puts raw messages straight into user's Maildir folder without IMAP, for tests
// that need many old mails fast (no server needed; a running one sees them at the next
// SELECT, STATUS or rescan). folder is an IMAP name as from FolderName ("" or "INBOX"
// is the inbox; "INBOX.a.b" or just "a.b"); a missing folder is created (not
// subscribed). Non-ASCII names are fine: Courier-IMAP 5 keeps folder names in UTF-8 on
// disk (".Ärger"). The messages go to cur/ with an empty info part (":2,"): already
// seen by the server, so not \Recent, and unread. Their UIDs are assigned in the given
// order when a session next scans the folder.
func (c *Courier) Seed(user, folder string, msgs [][]byte) error {
	if _, ok := c.opts.Users[user]; !ok {
		return fmt.Errorf("testenv: seed: unknown user %q", user)
	}
	box, err := c.folderDir(user, folder)
	if err != nil {
		return err
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(box, sub), 0o700); err != nil {
			return fmt.Errorf("testenv: seed: %w", err)
		}
	}
	if box != c.maildir(user) {
		// Maildir++ marks subfolders with an empty "maildirfolder" file.
		if err := os.WriteFile(filepath.Join(box, "maildirfolder"), nil, 0o600); err != nil {
			return fmt.Errorf("testenv: seed: %w", err)
		}
	}
	// maildir(5) delivery: write into tmp/, then rename, so a reader never sees a
	// partial file. Names (leading timestamp) and modification times both increase
	// with the slice order; Courier assigns the UIDs in that order (TestCourierSeed).
	base := time.Now().Add(-time.Duration(len(msgs)) * time.Second)
	for i, raw := range msgs {
		seq := c.seedSeq.Add(1)
		name := fmt.Sprintf("%d.M%06dP%dQ%d.testenv,S=%d", base.Unix()+int64(i), seq%1000000,
			os.Getpid(), seq, len(raw))
		tmp := filepath.Join(box, "tmp", name)
		if err := os.WriteFile(tmp, raw, 0o600); err != nil {
			return fmt.Errorf("testenv: seed: %w", err)
		}
		mtime := base.Add(time.Duration(i) * time.Second)
		_ = os.Chtimes(tmp, mtime, mtime)
		if err := os.Rename(tmp, filepath.Join(box, "cur", name+":2,")); err != nil {
			return fmt.Errorf("testenv: seed: %w", err)
		}
	}
	return nil
}

// folderDir maps a folder name in Courier's namespace to its Maildir++ directory.
func (c *Courier) folderDir(user, folder string) (string, error) {
	root := c.maildir(user)
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return root, nil
	}
	rest := folder
	if len(rest) > len("INBOX.") && strings.EqualFold(rest[:len("INBOX.")], "INBOX.") {
		rest = rest[len("INBOX."):]
	}
	for _, p := range strings.Split(rest, ".") {
		if p == "" || strings.ContainsAny(p, "/\x00\r\n") {
			return "", fmt.Errorf("testenv: seed: invalid Courier folder name %q", folder)
		}
	}
	return filepath.Join(root, "."+rest), nil
}
