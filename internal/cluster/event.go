// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// EventKind says what happened to a mailbox's registration.
type EventKind int

const (
	// EventSubscribe: the mailbox was registered (create, recreate or
	// update; Mode says which).
	EventSubscribe EventKind = iota + 1
	// EventClose: the mailbox was unregistered.
	EventClose
)

// Event is a registration change announced on the events channel, so that the
// node placing the mailbox applies it at once (every node's periodic
// reconcile is the backstop for a lost event).
//
// Wire format (one pub/sub message): "sub:<mode>:<mailbox id>" with mode the
// decimal mail.Mode, or "close:<mailbox id>". Mailbox ids may contain colons;
// they are always the last field.
type Event struct {
	Kind EventKind
	Mode mail.Mode // EventSubscribe only
	ID   mail.MailboxID
}

// String encodes e for Publish.
func (e Event) String() string {
	if e.Kind == EventClose {
		return "close:" + string(e.ID)
	}
	return "sub:" + strconv.Itoa(int(e.Mode)) + ":" + string(e.ID)
}

// ParseEvent decodes a message of the events channel; ok is false for
// anything that is not a registration event (EventNodes, Resync, garbage).
func ParseEvent(msg string) (e Event, ok bool) {
	kind, rest, _ := strings.Cut(msg, ":")
	switch kind {
	case "close":
		if rest == "" {
			return Event{}, false
		}
		return Event{Kind: EventClose, ID: mail.MailboxID(rest)}, true
	case "sub":
		modeS, id, found := strings.Cut(rest, ":")
		mode, err := strconv.Atoi(modeS)
		if !found || err != nil || id == "" || mode < int(mail.ModeCreate) || mode > int(mail.ModeUpdate) {
			return Event{}, false
		}
		return Event{Kind: EventSubscribe, Mode: mail.Mode(mode), ID: mail.MailboxID(id)}, true
	}
	return Event{}, false
}
