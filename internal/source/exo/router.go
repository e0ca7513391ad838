// SPDX-License-Identifier: Apache-2.0

package exo

import (
	"context"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Session is what the session of every transport offers the consumers
// (syncer, history, service): their interfaces together. The optional ones
// (Wait, MarkDelivered, …) stay with the session's own type.
type Session interface {
	Folders(ctx context.Context) ([]mail.Folder, error)
	Changes(ctx context.Context, folder, cursor string) (source.Changes, error)
	Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error)
	Search(ctx context.Context, folder string, q mail.Query) ([]source.Ref, error)
	FetchMany(ctx context.Context, refs []source.Ref, fn func(ref source.Ref, f *source.Fetched) error) error
	Close() error
}

// Transport's adapter: how to open a session, send and describe a failure.
type Adapter struct {
	Open     func(ctx context.Context, mb *mail.Mailbox) (Session, error)
	Send     func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
	SendRaw  func(ctx context.Context, mb *mail.Mailbox, raw []byte) error
	Describe func(mb *mail.Mailbox, err error) string
}

// Router serves Exchange-type mailboxes through the transport Policy picks.
// IMAP gets the mailbox converted for Exchange Online's IMAP endpoint, its
// sending for the SMTP submission endpoint.
type Router struct {
	Policy Policy
	EWS    Adapter
	Graph  Adapter // Open nil: Graph is not available in this build or configuration
	IMAP   Adapter
}

// adapter returns the adapter for mb and the mailbox as that adapter wants it.
func (r Router) adapter(mb *mail.Mailbox, sending bool) (Adapter, *mail.Mailbox, error) {
	t, err := r.Policy.Route(mb)
	if err != nil {
		return Adapter{}, nil, err
	}
	switch t {
	case Graph:
		if r.Graph.Open == nil {
			return Adapter{}, nil, r.Policy.unreachable(mb, "Microsoft Graph is not configured on this service")
		}
		return r.Graph, mb, nil
	case IMAP:
		if sending {
			return r.IMAP, r.Policy.SMTPMailbox(mb), nil
		}
		return r.IMAP, r.Policy.IMAPMailbox(mb), nil
	}
	return r.EWS, mb, nil
}

// Open opens mb's session on its transport.
func (r Router) Open(ctx context.Context, mb *mail.Mailbox) (Session, error) {
	a, m, err := r.adapter(mb, false)
	if err != nil {
		return nil, err
	}
	return a.Open(ctx, m)
}

// Send sends msg from mb on its transport.
func (r Router) Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	a, m, err := r.adapter(mb, true)
	if err != nil {
		return &mail.UserError{Err: err, Msg: err.Error()}
	}
	return a.Send(ctx, m, msg)
}

// SendRaw sends a complete message from mb on its transport.
func (r Router) SendRaw(ctx context.Context, mb *mail.Mailbox, raw []byte) error {
	a, m, err := r.adapter(mb, true)
	if err != nil {
		return &mail.UserError{Err: err, Msg: err.Error()}
	}
	if a.SendRaw == nil {
		err := mail.Errorf(mail.ClassConfig, "send raw", "this transport cannot send a message as it is")
		return &mail.UserError{Err: err, Msg: err.Error()}
	}
	return a.SendRaw(ctx, m, raw)
}

// Describe turns a failure into a sentence for the user, in the terms of
// mb's transport.
func (r Router) Describe(mb *mail.Mailbox, err error) string {
	a, m, rerr := r.adapter(mb, false)
	if rerr != nil {
		return rerr.Error()
	}
	if a.Describe == nil {
		return err.Error()
	}
	return a.Describe(m, err)
}

// WatchByDefault is the folder rule of every transport: Creatio's "all
// folders" for an Exchange mailbox has always meant the inbox.
func WatchByDefault(f mail.Folder) bool { return f.IsInbox() }
