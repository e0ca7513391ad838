// SPDX-License-Identifier: Apache-2.0

package ewsfake

import "time"

// eventKind is a notification event type; the bit is its place in a subscription's
// EventTypes mask.
type eventKind uint8

const (
	evCopied eventKind = 1 << iota
	evCreated
	evDeleted
	evModified
	evMoved
	evNewMail
	evFreeBusy
)

var eventNames = []struct {
	kind eventKind
	name string
}{
	{evCopied, "CopiedEvent"},
	{evCreated, "CreatedEvent"},
	{evDeleted, "DeletedEvent"},
	{evModified, "ModifiedEvent"},
	{evMoved, "MovedEvent"},
	{evNewMail, "NewMailEvent"},
	{evFreeBusy, "FreeBusyChangedEvent"},
}

func (k eventKind) String() string {
	for _, e := range eventNames {
		if e.kind == k {
			return e.name
		}
	}
	return "UnknownEvent"
}

func eventKindOf(name string) (eventKind, bool) {
	for _, e := range eventNames {
		if e.name == name {
			return e.kind, true
		}
	}
	return 0, false
}

// event is one mailbox change as notifications report it. Strings are shared with
// the items and folders they name, so queued events cost little.
type event struct {
	kind        eventKind
	folderEvent bool // the object is a folder (FolderId) rather than an item (ItemId)
	at          time.Time
	id, ck      string // the object
	parent      string // its (new) parent folder
	parentCK    string
	oldID       string // moved/copied: the previous object and parent
	oldCK       string
	oldParent   string
	oldParentCK string
	unread      int // folder ModifiedEvent
	hasUnread   bool
	watermark   uint64 // position in the mailbox's event sequence (pull subscriptions)
}

// fire queues ev on every subscription of mb that wants it and wakes the streams
// they are attached to. Callers hold s.mu.
func (s *Server) fire(mb *mailbox, ev event) {
	if len(mb.subs) == 0 {
		return
	}
	for sub := range mb.subs {
		if !sub.wants(&ev) {
			continue
		}
		sub.nextMark++
		e := ev
		e.watermark = sub.nextMark
		sub.queue = append(sub.queue, e)
		if len(sub.queue) > maxQueuedEvents {
			// A subscription nobody reads must not grow without bound; Exchange drops
			// such subscriptions too. Keep the newest events.
			sub.queue = append(sub.queue[:0], sub.queue[len(sub.queue)-maxQueuedEvents:]...)
		}
		if sub.stream != nil {
			sub.stream.wake()
		}
	}
}

// maxQueuedEvents bounds the events a subscription holds while nobody reads them.
const maxQueuedEvents = 10000
