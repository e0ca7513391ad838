// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"context"
	"fmt"
	"time"

	"github.com/emaillistener/emaillistener/internal/compose"
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Send sends msg from mb through Exchange: the same RFC 5322 message the SMTP
// path would submit (package compose), handed to CreateItem with
// SendAndSaveCopy, so Exchange files the copy in Sent Items itself. A
// failure carries a sentence for the user.
func (a *Adapter) Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	raw, err := compose.Build(msg, time.Now())
	if err != nil {
		err = mail.Wrap(mail.ClassConfig, "compose", err)
		return &mail.UserError{Err: err, Msg: fmt.Sprintf("The email cannot be built: %v", err)}
	}
	return a.SendRaw(ctx, mb, raw)
}

// SendRaw sends a complete message as it is: Exchange takes the
// recipients from its header (Bcc included) and files the copy in Sent
// Items.
func (a *Adapter) SendRaw(ctx context.Context, mb *mail.Mailbox, raw []byte) error {
	url, _, err := a.endpoint(ctx, mb)
	if err != nil {
		return &mail.UserError{Err: err, Msg: "Sending failed: " + Describe(mb, err)}
	}
	c, err := a.client(url, a.credentials(mb))
	if err != nil {
		return &mail.UserError{Err: err, Msg: "Sending failed: " + Describe(mb, err)}
	}
	defer c.CloseIdleConnections()
	_, err = retry(ctx, a.opts.BusyPatience, func() (struct{}, error) {
		return struct{}{}, c.SendMIME(ctx, ews.Target{Anchor: address(mb)}, raw)
	})
	if err != nil {
		return &mail.UserError{Err: err, Msg: "Sending failed: " + Describe(mb, err)}
	}
	return nil
}
