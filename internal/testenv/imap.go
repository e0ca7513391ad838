// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
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
// not exist, and returns the new message's UID (from APPENDUID, RFC 4315 §3). It uses
// its own short-lived connection, so it does not disturb the clients under test; their
// IDLE sees the message ~0.5 s later, or within ~25 ms with Hibernate.
func (d *Dovecot) Append(user, password, folder string, raw []byte) (uint32, error) {
	if folder == "" {
		folder = "INBOX"
	}
	c, err := d.Client(user, password)
	if err != nil {
		return 0, err
	}
	defer closeClient(c)
	if !strings.EqualFold(folder, "INBOX") {
		if err := createFolder(c, folder); err != nil {
			return 0, err
		}
	}
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

// CreateFolder creates and subscribes name (hierarchy separator "/"). A folder that
// already exists is not an error, so tests can call it unconditionally.
func (d *Dovecot) CreateFolder(user, password, name string) error {
	c, err := d.Client(user, password)
	if err != nil {
		return err
	}
	defer closeClient(c)
	return createFolder(c, name)
}

func createFolder(c *imapclient.Client, name string) error {
	err := c.Create(name, nil).Wait()
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

// closeClient logs out politely and closes; errors do not matter to a helper connection.
func closeClient(c *imapclient.Client) {
	_ = c.Logout().Wait()
	_ = c.Close()
}
