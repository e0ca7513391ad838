// SPDX-License-Identifier: Apache-2.0

// Package ingest is the one step from a downloaded message to an
// acknowledged email, shared by live subscriptions (syncer) and history loads
// (history):
//
//  1. parse the raw message;
//  2. fix it up: the arrival date stands in for a missing Date header (the
//     client's duplicate detection hashes the send date), and a message
//     fetched with its header only gets a note saying so;
//  3. deliver it to the client;
//  4. decide what a failure means: an unparseable message and one the client
//     refuses for good are skipped (the caller moves past them), anything else
//     is returned (the caller retries later; nothing is lost).
package ingest

import (
	"context"
	"errors"
	"log/slog"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Skip reasons, also metric label values.
const (
	SkipUnparseable = "unparseable"
	SkipRejected    = "rejected"
	SkipGone        = "expunged" // deleted on the server before it could be fetched
)

// SkipReasons lists every skip reason, for metric labels.
var SkipReasons = []string{SkipRejected, SkipUnparseable, SkipGone}

// Step parses and delivers. Parse and Deliver are required.
type Step struct {
	Parse func(raw []byte) (*mail.Message, error)
	// Deliver blocks until the client acknowledged msg, refused it (an error
	// with PermanentFailure() true is a refusal for good), or ctx ended.
	Deliver func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
}

// permanent is implemented by delivery errors that retrying cannot fix.
type permanent interface{ PermanentFailure() bool }

// Run takes f through the step for mailbox mb. It returns the skip reason
// ("" when delivered), or an error when the email was neither delivered nor
// skipped. log gets one line per skipped message.
func (s Step) Run(ctx context.Context, log *slog.Logger, mb *mail.Mailbox, f *source.Fetched) (skipped string, err error) {
	msg, err := Prepare(s.Parse, mb, f)
	if err != nil {
		log.Error("unparseable message skipped", "folder", f.Ref.Folder, "id", f.Ref.ID, "err", err)
		return SkipUnparseable, nil
	}
	if err := s.Deliver(ctx, mb, msg); err != nil {
		var p permanent
		if !errors.As(err, &p) || !p.PermanentFailure() {
			return "", err
		}
		log.Error("client refused the email for good, skipped", "folder", f.Ref.Folder, "id", f.Ref.ID,
			"message_id", msg.MessageID, "err", err)
		return SkipRejected, nil
	}
	return "", nil
}

// Prepare is steps 1 and 2 for mailbox mb: f parsed with parse, and fixed up
// as the client gets it (also for a message fetched again on request).
func Prepare(parse func(raw []byte) (*mail.Message, error), mb *mail.Mailbox, f *source.Fetched) (*mail.Message, error) {
	msg, err := parse(f.Raw)
	if err != nil {
		return nil, err
	}
	if msg.Date.IsZero() {
		msg.Date = f.Date.UTC()
	}
	if f.Truncated {
		msg.MarkTruncated()
	}
	msg.Folder, msg.SourceID = f.Ref.Folder, f.Ref.ID
	if mb.WebhookRaw {
		msg.Raw = f.Raw
	}
	return msg, nil
}
