// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Event types a subscription can ask for. Subscribe also takes them without
// the "Event" suffix ("NewMail").
const (
	EventNewMail  = "NewMailEvent"
	EventCreated  = "CreatedEvent"
	EventDeleted  = "DeletedEvent"
	EventModified = "ModifiedEvent"
	EventMoved    = "MovedEvent"
	EventCopied   = "CopiedEvent"
	EventFreeBusy = "FreeBusyChangedEvent"
)

type subscribeMsg struct {
	responseMessage
	ID string `xml:"SubscriptionId"`
}

// Subscribe opens a streaming subscription to events of the given folders
// (nil: every folder of the mailbox, SubscribeToAllFolders) and returns its
// id. events are EventXxx names; empty: NewMail and Created. A streaming
// subscription lives on the backend server that created it: send the
// subscriptions of one streaming connection with the same Target.Anchor and
// Affinity, the anchor mailbox first.
func (c *Client) Subscribe(ctx context.Context, t Target, folders []FolderID, events []string) (string, error) {
	const op = "Subscribe"
	types, err := eventTypes(events)
	if err != nil {
		return "", err
	}
	for _, f := range folders {
		if f.empty() {
			return "", mail.Errorf(mail.ClassConfig, "ews "+op, "empty folder id")
		}
	}
	msgs, err := call[subscribeMsg](ctx, c, t, op, false, func(w *xmlw) {
		w.start("m:Subscribe")
		if folders == nil {
			w.start("m:StreamingSubscriptionRequest", "SubscribeToAllFolders", "true")
		} else {
			w.start("m:StreamingSubscriptionRequest")
			w.start("t:FolderIds")
			for _, f := range folders {
				w.folderID(f)
			}
			w.end("t:FolderIds")
		}
		w.start("t:EventTypes")
		for _, e := range types {
			w.elem("t:EventType", e)
		}
		w.end("t:EventTypes")
		w.end("m:StreamingSubscriptionRequest")
		w.end("m:Subscribe")
	})
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(msgs[0].ID)
	if id == "" {
		return "", mail.Errorf(mail.ClassProtocol, "ews "+op, "response without a subscription id")
	}
	return id, nil
}

// eventTypes normalises and checks event names.
func eventTypes(events []string) ([]string, error) {
	if len(events) == 0 {
		return []string{EventNewMail, EventCreated}, nil
	}
	out := make([]string, 0, len(events))
	for _, e := range events {
		if !strings.HasSuffix(e, "Event") {
			e += "Event"
		}
		switch e {
		case EventNewMail, EventCreated, EventDeleted, EventModified, EventMoved, EventCopied, EventFreeBusy:
			out = append(out, e)
		default:
			return nil, mail.Errorf(mail.ClassInternal, "ews Subscribe", "unknown event type %q", e)
		}
	}
	return out, nil
}

// Unsubscribe ends a subscription. A subscription that is already gone
// fails with ErrSubscriptionLost, which callers may ignore; an abandoned
// streaming subscription also lapses by itself on the server.
func (c *Client) Unsubscribe(ctx context.Context, t Target, id string) error {
	if id == "" {
		return mail.Errorf(mail.ClassInternal, "ews Unsubscribe", "empty subscription id")
	}
	_, err := call[responseMessage](ctx, c, t, "Unsubscribe", true, func(w *xmlw) {
		w.start("m:Unsubscribe")
		w.elem("m:SubscriptionId", id)
		w.end("m:Unsubscribe")
	})
	return err
}
