// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Client dials the plain IMAP port and logs in as user. The caller owns the client and
// must Close it (Logout first for a clean server log).
func (d *Dovecot) Client(user, password string) (*imapclient.Client, error) {
	return d.ClientWithOptions(user, password, nil)
}

// ClientWithOptions is Client with imapclient options, e.g. an UnilateralDataHandler
// to observe IDLE updates. opts may be nil.
func (d *Dovecot) ClientWithOptions(user, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(d.IMAPAddr, opts)
	if err != nil {
		return nil, fmt.Errorf("testenv: dial %s: %w", d.IMAPAddr, err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("testenv: login %s: %w", user, err)
	}
	return c, nil
}

// Append stores raw in user's folder ("" means INBOX), creating the folder if it does
// not exist, and returns the new message's UID (see AppendTo). Dovecot's IDLE clients
// see the message ~0.5 s later, or within ~25 ms with Hibernate.
func (d *Dovecot) Append(user, password, folder string, raw []byte) (uint32, error) {
	return AppendTo(d.IMAPAddr, nil, user, password, folder, raw)
}

// CreateFolder creates and subscribes name (hierarchy separator "/"). A folder that
// already exists is not an error, so tests can call it unconditionally.
func (d *Dovecot) CreateFolder(user, password, name string) error {
	return CreateFolderAt(d.IMAPAddr, nil, user, password, name)
}

// closeClient logs out politely and closes; errors do not matter to a helper connection.
func closeClient(c *imapclient.Client) {
	_ = c.Logout().Wait()
	_ = c.Close()
}
