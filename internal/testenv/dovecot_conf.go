// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// mailOwner is the system account that owns the Maildirs and runs the mail processes.
type mailOwner struct {
	user, group string // names, for Dovecot settings that want names
	uid, gid    int
	root        bool // the harness runs as root (so mail is owned by someone else)
}

// lookupMailOwner picks the account mail is stored as. Dovecot refuses uid 0 for mail
// access ("userdb returned 0 as uid"), so as root we use the
// `dovecot` user the dovecot-core package creates; otherwise everything runs as the
// invoking user.
func lookupMailOwner() (mailOwner, error) {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("dovecot")
		if err != nil {
			return mailOwner{}, fmt.Errorf("testenv: system user dovecot (created by the dovecot-core package; run scripts/install-test-deps.sh): %w", err)
		}
		return ownerFromUser(u, true)
	}
	u, err := user.Current()
	if err != nil {
		return mailOwner{}, fmt.Errorf("testenv: current user: %w", err)
	}
	return ownerFromUser(u, false)
}

func ownerFromUser(u *user.User, root bool) (mailOwner, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return mailOwner{}, fmt.Errorf("testenv: uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return mailOwner{}, fmt.Errorf("testenv: gid of %s: %w", u.Username, err)
	}
	group := u.Gid
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		group = g.Name
	}
	return mailOwner{user: u.Username, group: group, uid: uid, gid: gid, root: root}, nil
}

// confParams is everything one start of Dovecot needs in its config file.
type confParams struct {
	dir                           string
	instance                      string
	greeting                      string
	imapPort, imapsPort, lmtpPort int
	owner                         mailOwner
	opts                          *DovecotOptions
}

// validateUsers checks what the passwd-file format and the home-dir template can hold.
func validateUsers(opts *DovecotOptions) error {
	if len(opts.Users) == 0 && opts.AnyPassword == "" {
		return errors.New("testenv: DovecotOptions.Users or DovecotOptions.AnyPassword must be set")
	}
	for u, pw := range opts.Users {
		if err := validUserName(u); err != nil {
			return err
		}
		// passwd-file is colon-separated, one user per line.
		if strings.ContainsAny(pw, ":\r\n") || pw == "" {
			return fmt.Errorf("testenv: DovecotOptions.Users[%q]: password must be non-empty without ':' or newlines", u)
		}
	}
	if strings.ContainsAny(opts.AnyPassword, "\r\n ") {
		return errors.New("testenv: DovecotOptions.AnyPassword must not contain spaces or newlines")
	}
	return nil
}

// validUserName rejects names that would break the passwd-file or escape the mail
// directory (home = DIR/mail/<user>).
func validUserName(u string) error {
	if u == "" || u == "." || u == ".." || strings.ContainsAny(u, ":/\\\r\n\t ") {
		return fmt.Errorf("testenv: invalid user name %q", u)
	}
	return nil
}

// writeUsers writes the passwd-file: name:{PLAIN}password:uid:gid:gecos:home:shell:extra.
// Empty uid/gid/home fields fall back to the static userdb.
func writeUsers(path string, users map[string]string) error {
	var b strings.Builder
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::::\n", u, users[u])
	}
	// Private: StartDovecot hands it to the user the auth process runs as.
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// renderConf produces dovecot.conf. The file is self-contained (no conf.d includes), so
// the system configuration of the machine cannot leak in.
func renderConf(p confParams) string {
	var b strings.Builder
	d := p.dir
	fmt.Fprintf(&b, `# Private Dovecot test instance written by internal/testenv; all state lives under this dir.
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = %[2]s
# unique per start: readiness must prove the greeting comes from this very process
login_greeting = %[3]s
protocols = imap lmtp
listen = 127.0.0.1
log_path = %[1]s/log/dovecot.log
auth_verbose = yes
verbose_proctitle = yes
ssl = yes
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# Dovecot delays failed logins by 2 s (anti brute force); tests of bad credentials should
# not pay that. ExtraConf can restore it.
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_max_userip_connections = %[4]d
# the default 500 rejects the dovecot system user (uid ~100)
first_valid_uid = 1
first_valid_gid = 1

# "/" as hierarchy separator (on disk Maildir++ still uses "."), so DeliverFile can map
# folder names to directories predictably.
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Junk {
    special_use = \Junk
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Trash {
    special_use = \Trash
  }
}

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/users
}
`, d, p.instance, p.greeting, userIPLimit(p.opts))
	if p.opts.AnyPassword != "" {
		fmt.Fprintf(&b, `# any user name logs in with this password: thousands of mailboxes without a users file
passdb {
  driver = static
  args = password=%s
}
`, p.opts.AnyPassword)
	}
	fmt.Fprintf(&b, `userdb {
  driver = static
  args = uid=%d gid=%d home=%s/mail/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %d
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %d
  }
}
`, p.owner.uid, p.owner.gid, d, p.imapPort, p.imapsPort, p.lmtpPort)
	if !p.owner.root {
		// Non-root: every service must run as the invoking user and nothing may chroot
		// (verified up to 2000 IDLE connections).
		fmt.Fprintf(&b, `
# running as non-root: every service runs as the invoking user, no chroot
default_internal_user = %[1]s
default_internal_group = %[2]s
default_login_user = %[1]s
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
`, p.owner.user, p.owner.group)
	}
	if p.opts.Scale || p.opts.Hibernate {
		b.WriteString(scaleConf)
	}
	if p.opts.Hibernate {
		b.WriteString(hibernateConf)
		if p.owner.root {
			b.WriteString(hibernateRootConf)
		}
	}
	if p.opts.ExtraConf != "" {
		fmt.Fprintf(&b, "\n# --- DovecotOptions.ExtraConf\n%s\n", p.opts.ExtraConf)
	}
	return b.String()
}

func userIPLimit(opts *DovecotOptions) int {
	if opts.Scale || opts.Hibernate {
		return 20000
	}
	return 1000
}

// scaleConf holds thousands of IDLE connections: few login processes serving many
// clients each, one imap process per connection, client limits raised to match.
const scaleConf = `
# --- Scale: thousands of IDLE connections
# auth/anvil/stats/log get one connection per imap process; 20000 gave no warnings.
# (Raising default_process_limit instead triggers setrlimit(RLIMIT_NPROC) errors.)
default_client_limit = 20000
service imap-login {
  service_count = 0          # "high-performance" login: few processes, many clients each
  process_min_avail = 2      # ~ number of CPU cores
  process_limit = 8
  client_limit = 10000       # also proxies the TLS of every imaps connection
  vsz_limit = 1G
}
service imap {
  process_limit = 10000      # one imap process per non-hibernated connection
}
`

// hibernateConf moves IDLE connections to imap-hibernate: ~7 KB per connection instead of
// an imap process each, and IDLE notifications in 5-25 ms instead of Dovecot's fixed
// ~500 ms notify delay (NOTIFY_DELAY_MSECS in its mailbox-watch.c).
const hibernateConf = `
# --- Hibernate: IDLE connections move to imap-hibernate after 2 s
imap_hibernate_timeout = 2s
service imap-hibernate {
  client_limit = 5000        # 2 fds per client: stay well below the 20000 fd limit per process
  process_limit = 4
}
`

// hibernateRootConf lets imap-hibernate (running as the dovecot user) connect back to
// imap-master to wake clients up; rootless needs nothing since all runs as one user.
const hibernateRootConf = `service imap {
  unix_listener imap-master {
    user = $default_internal_user
  }
}
`

// confPath and friends name the files of an instance directory.
func confPath(dir string) string      { return filepath.Join(dir, "dovecot.conf") }
func logPath(dir string) string       { return filepath.Join(dir, "log", "dovecot.log") }
func stderrPath(dir string) string    { return filepath.Join(dir, "log", "stderr.log") }
func mailRoot(dir string) string      { return filepath.Join(dir, "mail") }
func masterPIDPath(dir string) string { return filepath.Join(dir, "run", "master.pid") }
