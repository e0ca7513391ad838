// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Server-neutral IMAP helpers: every private server of this package (Dovecot, Cyrus,
// Courier) is reached through an address and an optional TLS configuration, so the
// per-server Append/CreateFolder methods are thin wrappers around these.

// LoginAt dials addr and logs in as user. With tlsConf nil the connection is plain
// (the servers allow plaintext LOGIN on loopback); otherwise addr is an implicit-TLS
// (IMAPS) port verified with tlsConf. opts may be nil. The caller owns the client and
// must Close it (Logout first for a clean server log).
func LoginAt(addr string, tlsConf *tls.Config, user, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	var (
		c   *imapclient.Client
		err error
	)
	if tlsConf != nil {
		o := imapclient.Options{}
		if opts != nil {
			o = *opts
		}
		o.TLSConfig = tlsConf
		c, err = imapclient.DialTLS(addr, &o)
	} else {
		c, err = imapclient.DialInsecure(addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("testenv: dial %s: %w", addr, err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("testenv: login %s at %s: %w", user, addr, err)
	}
	return c, nil
}

// AppendTo stores raw in user's folder ("" means INBOX) on the server at addr (see
// LoginAt for tlsConf), creating and subscribing the folder first unless it is INBOX,
// and returns the new message's UID from APPENDUID (RFC 4315 §3). folder is in the
// server's own naming (e.g. "INBOX.Projects" on a Cyrus without altnamespace). It uses
// its own short-lived connection, so it does not disturb the clients under test.
func AppendTo(addr string, tlsConf *tls.Config, user, password, folder string, raw []byte) (uint32, error) {
	if folder == "" {
		folder = "INBOX"
	}
	c, err := LoginAt(addr, tlsConf, user, password, nil)
	if err != nil {
		return 0, err
	}
	defer closeClient(c)
	if !strings.EqualFold(folder, "INBOX") {
		if err := ensureFolder(c, folder); err != nil {
			return 0, err
		}
	}
	return appendLiteral(c, folder, raw)
}

// CreateFolderAt creates and subscribes name (in the server's own naming and hierarchy
// separator) for user on the server at addr (see LoginAt for tlsConf). A folder that
// already exists is not an error, so tests can call it unconditionally.
func CreateFolderAt(addr string, tlsConf *tls.Config, user, password, name string) error {
	c, err := LoginAt(addr, tlsConf, user, password, nil)
	if err != nil {
		return err
	}
	defer closeClient(c)
	return ensureFolder(c, name)
}

// ensureFolder creates and subscribes name unless it exists. Servers disagree on how
// they refuse to create an existing folder (Dovecot: NO [ALREADYEXISTS], RFC 5530;
// Cyrus 3.6: a bare "NO Mailbox already exists"; Courier: "NO Cannot create this
// folder."), so a LIST of the exact name decides first.
func ensureFolder(c *imapclient.Client, name string) error {
	found, err := c.List("", name, nil).Collect()
	if err != nil {
		return fmt.Errorf("testenv: list %s: %w", name, err)
	}
	for _, m := range found {
		if m.Mailbox == name {
			return nil
		}
	}
	err = c.Create(name, nil).Wait()
	var imapErr *imap.Error
	if errors.As(err, &imapErr) && imapErr.Code == imap.ResponseCodeAlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("testenv: create folder %s: %w", name, err)
	}
	// Clients that list with LSUB (RFC 3501 §6.3.9) only see subscribed folders.
	if err := c.Subscribe(name).Wait(); err != nil {
		return fmt.Errorf("testenv: subscribe %s: %w", name, err)
	}
	return nil
}

// appendLiteral appends raw to folder on a logged-in client and returns the APPENDUID.
func appendLiteral(c *imapclient.Client, folder string, raw []byte) (uint32, error) {
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return 0, fmt.Errorf("testenv: append to %s: %w", folder, err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("testenv: append to %s: %w", folder, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("testenv: append to %s: %w", folder, err)
	}
	if data.UID == 0 {
		return 0, fmt.Errorf("testenv: append to %s: server sent no APPENDUID", folder)
	}
	return uint32(data.UID), nil
}
