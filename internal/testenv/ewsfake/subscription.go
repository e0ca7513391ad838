// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"slices"
	"strconv"
	"time"
)

// subscription is a streaming or pull subscription on one mailbox. It is a plain
// record: events are appended to queue by whoever changes the mailbox, and the stream
// it is attached to (if any) is woken to send them. No goroutine per subscription.
type subscription struct {
	id        string
	mbox      *mailbox
	owner     *account // who created it
	budget    string   // account it counts against
	backend   int
	pull      bool
	all       bool     // SubscribeToAllFolders
	folders   []string // folder ids watched (when not all)
	types     eventKind
	queue     []event
	nextMark  uint64        // watermark of the last queued event
	stream    *stream       // attached stream, nil when none
	idleSince time.Time     // when the last stream detached (or creation)
	timeout   time.Duration // lifetime without a stream (or GetEvents)
}

// wants tells whether ev concerns a watched folder and type.
func (sub *subscription) wants(ev *event) bool {
	if sub.types&ev.kind == 0 {
		return false
	}
	if sub.all {
		return true
	}
	for _, f := range sub.folders {
		if f == ev.parent || (ev.folderEvent && f == ev.id) || (ev.oldParent != "" && f == ev.oldParent) {
			return true
		}
	}
	return false
}

// mayUse tells whether c may read or drop the subscription: its creator, anyone
// acting on its mailbox, or the service account that impersonated its creation.
func (sub *subscription) mayUse(c *caller) bool {
	return sub.owner == c.acct || sub.mbox == c.mbox
}

// expired tells whether the subscription outlived its idle timeout.
func (sub *subscription) expired(now time.Time) bool {
	return sub.stream == nil && now.Sub(sub.idleSince) > sub.timeout
}

// removeSub forgets a subscription. Callers hold s.mu.
func (s *Server) removeSub(sub *subscription) {
	if s.subs[sub.id] != sub {
		return
	}
	delete(s.subs, sub.id)
	delete(sub.mbox.subs, sub)
	if s.subCount[sub.budget]--; s.subCount[sub.budget] <= 0 {
		delete(s.subCount, sub.budget)
	}
	sub.queue = nil
	if st := sub.stream; st != nil {
		st.subs = slices.DeleteFunc(st.subs, func(x *subscription) bool { return x == sub })
		sub.stream = nil
		st.wake()
	}
}

// expireIdle drops subscriptions that timed out. Callers hold s.mu.
func (s *Server) expireIdle(now time.Time) {
	for _, sub := range s.subs {
		if sub.expired(now) {
			s.removeSub(sub)
		}
	}
}

// lookupSub finds a live subscription, expiring it first if it timed out. Callers
// hold s.mu.
func (s *Server) lookupSub(id string, now time.Time) *subscription {
	sub := s.subs[id]
	if sub != nil && sub.expired(now) {
		s.removeSub(sub)
		return nil
	}
	return sub
}

var errInvalidSubscriptionRequest = &ewsError{"ErrorInvalidSubscriptionRequest", "The subscription request is invalid."}

// Subscribe creates a streaming or pull subscription (push subscriptions are
// refused: the fake cannot call back). All folders must belong to one mailbox.
func (s *Server) opSubscribe(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "PullSubscriptionRequest", "PushSubscriptionRequest", "StreamingSubscriptionRequest")); err != nil {
		return err
	}
	req := op.kids[0]
	pull := req.local == "PullSubscriptionRequest"
	switch req.local {
	case "StreamingSubscriptionRequest":
		if err := checkSeq(req, opt(nsTypes, "FolderIds"), one(nsTypes, "EventTypes")); err != nil {
			return err
		}
	case "PullSubscriptionRequest":
		if err := checkSeq(req, opt(nsTypes, "FolderIds"), one(nsTypes, "EventTypes"), opt(nsTypes, "Watermark"), one(nsTypes, "Timeout")); err != nil {
			return err
		}
	default:
		if err := checkSeq(req, opt(nsTypes, "FolderIds"), one(nsTypes, "EventTypes"), opt(nsTypes, "Watermark"),
			one(nsTypes, "StatusFrequency"), one(nsTypes, "URL"), opt(nsTypes, "CallerData")); err != nil {
			return err
		}
	}
	all, err := boolAttr(req, "SubscribeToAllFolders")
	if err != nil {
		return err
	}
	var refs []folderRef
	if fi := req.child(nsTypes, "FolderIds"); fi != nil {
		if refs, err = parseFolderIDs(fi, false); err != nil {
			return err
		}
	}
	types, err := parseEventTypes(req.child(nsTypes, "EventTypes"))
	if err != nil {
		return err
	}
	timeout := s.opts.SubscriptionIdle
	if pull {
		mins, err := intText(req.child(nsTypes, "Timeout"), 1, 1440)
		if err != nil {
			return err
		}
		timeout = min(time.Duration(mins)*time.Minute, timeout)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "Subscribe")
	defer responseEnd(b, "Subscribe")
	if req.local == "PushSubscriptionRequest" {
		errorMessage(b, "Subscribe", errMsg("ErrorInvalidSubscriptionRequest", "Push subscriptions are not supported by this server."))
		return nil
	}
	mb := c.mbox
	var folders []string
	for _, ref := range refs {
		f, e := s.resolveFolder(c, ref)
		if e != nil {
			errorMessage(b, "Subscribe", e)
			return nil
		}
		if mb != nil && f.mbox != mb {
			errorMessage(b, "Subscribe", errInvalidSubscriptionRequest)
			return nil
		}
		mb = f.mbox
		folders = append(folders, f.id)
	}
	switch {
	case mb == nil:
		errorMessage(b, "Subscribe", errMissingEmail)
		return nil
	case len(folders) == 0 && !all:
		errorMessage(b, "Subscribe", errInvalidSubscriptionRequest)
		return nil
	}
	budget := c.budget()
	if s.subCount[budget] >= s.opts.MaxSubscriptions {
		errorMessage(b, "Subscribe", errSubCount)
		return nil
	}
	now := time.Now()
	sub := &subscription{
		id:        subscriptionID(s.backends[c.backend].fqdn, now),
		mbox:      mb,
		owner:     c.acct,
		budget:    budget,
		backend:   c.backend,
		pull:      pull,
		all:       all,
		folders:   folders,
		types:     types,
		idleSince: now,
		timeout:   timeout,
	}
	if mb.subs == nil {
		mb.subs = make(map[*subscription]struct{})
	}
	mb.subs[sub] = struct{}{}
	s.subs[sub.id] = sub
	s.subCount[budget]++
	s.setAffinityCookie(c)
	msgStart(b, "Subscribe", nil)
	b.leaf("m:SubscriptionId", sub.id)
	if pull {
		b.leaf("m:Watermark", s.ids.watermark(mb.num, 0))
	}
	msgEnd(b, "Subscribe")
	return nil
}

func parseEventTypes(n *node) (eventKind, error) {
	if err := checkSeq(n, many(nsTypes, "EventType")); err != nil {
		return 0, err
	}
	var types eventKind
	for _, k := range n.kids {
		t, ok := eventKindOf(k.value())
		if !ok {
			_, err := enumText(k, "CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "NewMailEvent", "FreeBusyChangedEvent")
			return 0, err
		}
		types |= t
	}
	return types, nil
}

// Unsubscribe drops a subscription of the caller. A stream it was attached to keeps
// serving its other subscriptions.
func (s *Server) opUnsubscribe(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "SubscriptionId")); err != nil {
		return err
	}
	id := op.child(nsMsg, "SubscriptionId").value()
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "Unsubscribe")
	defer responseEnd(b, "Unsubscribe")
	sub := s.lookupSub(id, time.Now())
	switch {
	case sub == nil || sub.backend != c.backend:
		errorMessage(b, "Unsubscribe", errSubNotFound)
	case !sub.mayUse(c):
		errorMessage(b, "Unsubscribe", errSubAccessDenied)
	default:
		s.removeSub(sub)
		errorMessage(b, "Unsubscribe", nil)
	}
	return nil
}

// maxEventsPerNotification is how many events Exchange dequeues into one
// notification; MoreEvents says whether more are waiting.
const maxEventsPerNotification = 50

// GetEvents returns the queued events of a pull subscription (up to 50) with their
// watermarks, or a StatusEvent when nothing happened.
func (s *Server) opGetEvents(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "SubscriptionId"), one(nsMsg, "Watermark")); err != nil {
		return err
	}
	id := op.child(nsMsg, "SubscriptionId").value()
	wm := op.child(nsMsg, "Watermark").value()
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "GetEvents")
	defer responseEnd(b, "GetEvents")
	now := time.Now()
	sub := s.lookupSub(id, now)
	switch {
	case sub == nil || !sub.pull || sub.backend != c.backend:
		errorMessage(b, "GetEvents", errSubNotFound)
		return nil
	case !sub.mayUse(c):
		errorMessage(b, "GetEvents", errSubAccessDenied)
		return nil
	}
	if m, seq, err := s.ids.parseWatermark(wm); err != nil || m != sub.mbox.num || seq > sub.nextMark {
		errorMessage(b, "GetEvents", errMsg("ErrorInvalidWatermark", "The watermark used for creating this subscription was not recognized."))
		return nil
	}
	sub.idleSince = now
	n := min(len(sub.queue), maxEventsPerNotification)
	evs := sub.queue[:n]
	sub.queue = slices.Clone(sub.queue[n:])
	msgStart(b, "GetEvents", nil)
	b.open("m:Notification")
	b.leaf("t:SubscriptionId", sub.id)
	b.leaf("t:PreviousWatermark", wm)
	b.leaf("t:MoreEvents", strconv.FormatBool(len(sub.queue) > 0))
	if len(evs) == 0 {
		b.open("t:StatusEvent")
		b.leaf("t:Watermark", s.ids.watermark(sub.mbox.num, sub.nextMark-uint64(len(sub.queue))))
		b.end("t:StatusEvent")
	}
	for i := range evs {
		writeEvent(b, &evs[i], s.ids.watermark(sub.mbox.num, evs[i].watermark), false)
	}
	b.end("m:Notification")
	msgEnd(b, "GetEvents")
	return nil
}

// writeEvent renders one event in schema order: Watermark (pull only), TimeStamp,
// ItemId or FolderId, ParentFolderId, then the kind's extras.
func writeEvent(b *xw, ev *event, watermark string, ms bool) {
	name := "t:" + ev.kind.String()
	b.open(name)
	if watermark != "" {
		b.leaf("t:Watermark", watermark)
	}
	b.leaf("t:TimeStamp", fmtTime(ev.at, ms))
	idName, oldName := "t:ItemId", "t:OldItemId"
	if ev.folderEvent {
		idName, oldName = "t:FolderId", "t:OldFolderId"
	}
	b.empty(idName, "Id", ev.id, "ChangeKey", ev.ck)
	if ev.parent != "" {
		b.empty("t:ParentFolderId", "Id", ev.parent, "ChangeKey", ev.parentCK)
	}
	switch ev.kind {
	case evMoved, evCopied:
		b.empty(oldName, "Id", ev.oldID, "ChangeKey", ev.oldCK)
		b.empty("t:OldParentFolderId", "Id", ev.oldParent, "ChangeKey", ev.oldParentCK)
	case evModified:
		if ev.hasUnread {
			b.leaf("t:UnreadCount", strconv.Itoa(ev.unread))
		}
	}
	b.end(name)
}
