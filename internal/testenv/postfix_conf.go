// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DovecotSASLConf is DovecotOptions.ExtraConf for a Dovecot that a Postfix with
// PostfixOptions.SASL checks SMTP logins against: Dovecot's auth service gets a
// socket at DIR/run/auth-postfix (base_dir is DIR/run) that Postfix's smtpd,
// running as the postfix user, may connect to. Logins then use the Dovecot's
// users and passwords, like a real submission server in front of an IMAP store.
//
// It also switches off Dovecot's auth penalty: after a failed login Dovecot delays
// every further authentication from that IP by 2 s, doubling up to 15 s. Every SMTP
// client comes from 127.0.0.1, so one wrong-password test would slow all the others
// down by seconds. Without the anvil-auth-penalty socket (mode 0 removes a listener)
// the auth process silently skips the penalty.
const DovecotSASLConf = `# Postfix SMTP AUTH (testenv.PostfixOptions.SASL) asks Dovecot over this socket
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
# no auth penalty: all test clients share 127.0.0.1 (see testenv.DovecotSASLConf)
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`

// dovecotSASLSocket is where DovecotSASLConf puts the socket of d.
func dovecotSASLSocket(d *Dovecot) string { return filepath.Join(d.Dir, "run", "auth-postfix") }

// postfixOwner is the package's postfix user and postdrop group, which own the
// queue: Postfix's queue daemons run as that user.
type postfixOwner struct {
	uid, gid, postdropGID int
}

func lookupPostfixOwner() (postfixOwner, error) {
	u, err := user.Lookup("postfix")
	if err != nil {
		return postfixOwner{}, fmt.Errorf("testenv: system user postfix (created by the postfix package; run scripts/install-test-deps.sh): %w", err)
	}
	g, err := user.LookupGroup("postdrop")
	if err != nil {
		return postfixOwner{}, fmt.Errorf("testenv: system group postdrop (created by the postfix package): %w", err)
	}
	var o postfixOwner
	if o.uid, err = strconv.Atoi(u.Uid); err == nil {
		if o.gid, err = strconv.Atoi(u.Gid); err == nil {
			o.postdropGID, err = strconv.Atoi(g.Gid)
		}
	}
	if err != nil {
		return postfixOwner{}, fmt.Errorf("testenv: postfix ids: %w", err)
	}
	return o, nil
}

// queueDirs are the queue subdirectories and their owners and modes, as the
// package's postfix-files sets them up. Creating them here instead of running
// `postfix check` saves ~1.3 s per start (it runs post-install, dozens of
// postconf calls and find over /etc/postfix).
var queueDirs = []struct {
	name     string
	mode     os.FileMode
	postdrop bool // group postdrop instead of root
	rootOwn  bool // owned by root instead of postfix
}{
	{"active", 0o700, false, false}, {"bounce", 0o700, false, false},
	{"corrupt", 0o700, false, false}, {"defer", 0o700, false, false},
	{"deferred", 0o700, false, false}, {"flush", 0o700, false, false},
	{"hold", 0o700, false, false}, {"incoming", 0o700, false, false},
	{"private", 0o700, false, false}, {"saved", 0o700, false, false},
	{"trace", 0o700, false, false},
	{"maildrop", 0o730, true, false}, {"public", 0o710, true, false},
	{"pid", 0o755, false, true},
}

// postfixLayout creates DIR/{conf,queue,data,log} with the owners Postfix
// insists on: data_directory owned by postfix (else master.lock cannot be opened),
// queue subdirectories as in postfix-files.
func postfixLayout(dir string, o postfixOwner) error {
	for _, sub := range []string{"", "conf", "queue", "log"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		// 0755: Postfix daemons run as the postfix user and chdir to the queue.
		if err := os.Chmod(p, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := os.Chown(data, o.uid, 0); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	for _, q := range queueDirs {
		p := filepath.Join(dir, "queue", q.name)
		if err := os.Mkdir(p, q.mode); err != nil && !os.IsExist(err) {
			return fmt.Errorf("testenv: %w", err)
		}
		uid, gid := o.uid, 0
		if q.rootOwn {
			uid = 0
		}
		if q.postdrop {
			gid = o.postdropGID
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.Chmod(p, q.mode); err != nil { // Mkdir's mode is filtered by the umask
			return fmt.Errorf("testenv: %w", err)
		}
	}
	return checkTraversable(dir)
}

// postfixConfParams is everything one start of Postfix needs in its config.
type postfixConfParams struct {
	dir              string
	hostname         string // myhostname, unique per instance
	banner           string // unique per start: readiness proves it is this process
	smtpPort         int
	smtpsPort        int
	lmtpAddr         string
	saslSocket       string // "" without SASL
	recipientsMap    string // "" when every address in the domains is accepted
	domains          []string
	messageSizeLimit int64
}

// renderPostfixMain produces main.cf. It is self-contained: the machine's
// /etc/postfix/main.cf (usually absent: "No configuration") never matters.
func renderPostfixMain(p postfixConfParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Private Postfix test instance written by internal/testenv; all state lives under %[1]s.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file = %[1]s/log/postfix.log
maillog_file_prefixes = %[1]s
syslog_name = postfix-%[2]s
mail_owner = postfix
setgid_group = postdrop
myhostname = %[2]s
mydomain = %[2]s
myorigin = $myhostname
append_dot_mydomain = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_banner = $myhostname ESMTP %[3]s
# no DNS, ever: client names are not looked up, and nothing is relayed
smtpd_peername_lookup = no
default_transport = error:this test instance delivers only to its own domains
relay_transport = error:this test instance delivers only to its own domains

# every recipient in these domains goes to Dovecot LMTP
virtual_mailbox_domains = %[4]s
virtual_transport = lmtp:inet:%[5]s
virtual_mailbox_maps = %[6]s

# tests want fast retries, not hours of queueing
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s

# STARTTLS on the SMTP port, implicit TLS on the SMTPS port (master.cf)
smtpd_tls_cert_file = %[1]s/cert.pem
smtpd_tls_key_file = %[1]s/key.pem
smtpd_tls_security_level = may
`, p.dir, p.hostname, p.banner, strings.Join(p.domains, ", "), p.lmtpAddr, p.recipientsMap)
	if p.messageSizeLimit > 0 {
		fmt.Fprintf(&b, "message_size_limit = %d\n", p.messageSizeLimit)
	}
	if p.saslSocket != "" {
		fmt.Fprintf(&b, `
# SMTP AUTH against the Dovecot's users (DovecotSASLConf); like a submission server,
# relaying needs a login, local domains accept mail from anyone
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = %s
mynetworks = 127.0.0.1/32
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
`, p.saslSocket)
	} else {
		b.WriteString(`
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
`)
	}
	return b.String()
}

// renderPostfixMaster produces master.cf: the two listeners plus the services a
// queue needs, none chrooted (a chroot would need a copy of the libraries and
// config).
func renderPostfixMaster(p postfixConfParams) string {
	return fmt.Sprintf(`# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:%d inet n - n - - smtpd
127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, p.smtpPort, p.smtpsPort)
}

// renderRecipients produces the texthash table of accepted recipients.
func renderRecipients(recipients []string) string {
	rs := slices.Clone(recipients)
	slices.Sort(rs)
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s OK\n", r)
	}
	return b.String()
}

// writeSettled writes a Postfix input file and backdates it. Postfix will not read
// a configuration or table file modified within the last second or two: it
// assumes an editor is still writing it and polls every 300 ms until the file is
// old enough (seen with strace: pselect 300 ms, re-read main.cf, for 2.4 s). That
// wait was most of the 2.5 s a first start used to take.
func writeSettled(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}
