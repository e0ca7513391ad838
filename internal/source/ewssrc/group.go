// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// streamPolicy spaces new streams after one failed or was cut.
var streamPolicy = backoff.Policy{Min: 200 * time.Millisecond, Max: time.Minute}

// unsubscribeTimeout bounds the best-effort Unsubscribe of a member who left.
const unsubscribeTimeout = 5 * time.Second

// group is one streaming connection and the members whose subscriptions it
// carries (see the notes in hub.go). run owns the stream; the other fields
// are guarded by mu.
type group struct {
	h     *hub
	key   string      // shared groups: URL and Autodiscover grouping
	url   string      // the EWS URL, for logs
	c     *ews.Client // subscribes and streams
	own   bool        // a mailbox's own connection, not shared
	aff   *ews.Affinity
	wakeC chan struct{} // buffered(1): members changed
	subC  chan struct{} // buffered(1): a shared group's members need subscribing

	mu      sync.Mutex
	anchor  string
	done    bool // run ended: the group takes no one
	members []*member
	subs    map[string]*member // by subscription id
	subOf   map[*member]string // "" while (re)subscription is due
	reissue bool               // the subscription ids changed
	stream  *ews.Stream
}

func newGroup(h *hub, key, url string, c *ews.Client, anchor string, own bool) *group {
	g := &group{h: h, key: key, url: url, c: c, own: own, anchor: anchor, wakeC: make(chan struct{}, 1), subC: make(chan struct{}, 1),
		subs: map[string]*member{}, subOf: map[*member]string{}}
	if !own {
		g.aff = &ews.Affinity{}
	}
	return g
}

// tryAdd adds m if the group has room and still runs.
func (g *group) tryAdd(m *member, size int) bool {
	g.mu.Lock()
	ok := !g.done && len(g.members) < size
	if ok {
		g.addLocked(m)
	}
	g.mu.Unlock()
	if ok {
		g.wake()
	}
	return ok
}

// memberTarget is how m's subscription is made: as itself on its own
// connection; impersonated, anchored and pinned to the group's backend on a
// shared one.
func (g *group) memberTarget(m *member) ews.Target {
	if g.own {
		return m.target
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return ews.Target{Impersonate: m.addr, Anchor: g.anchor, Affinity: g.aff}
}

// streamTarget is how the stream is requested; a shared one draws on the
// anchor's connection budget.
func (g *group) streamTarget() ews.Target {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.own {
		if len(g.members) > 0 {
			return g.members[0].target
		}
		return ews.Target{Anchor: g.anchor}
	}
	return ews.Target{Impersonate: g.anchor, Anchor: g.anchor, Affinity: g.aff}
}

// subscribe makes m's streaming subscription.
func (g *group) subscribe(ctx context.Context, m *member) (string, error) {
	t := g.memberTarget(m)
	sub, err := retry(ctx, g.h.a.opts.BusyPatience, func() (string, error) {
		return g.c.Subscribe(ctx, t, m.folderIDs(), eventTypes)
	})
	if err != nil && !g.own && mail.ClassOf(err) == mail.ClassAuth {
		err = accountError(err)
	}
	return sub, err
}

// add takes m into the group; run subscribes it.
func (g *group) add(m *member) {
	g.mu.Lock()
	g.addLocked(m)
	g.mu.Unlock()
	g.wake()
}

func (g *group) addLocked(m *member) {
	m.g = g
	g.members = append(g.members, m)
	g.subOf[m] = "" // due
	g.pokeSubscriber()
}

// pokeSubscriber tells a shared group's subscriber that members are due.
func (g *group) pokeSubscriber() {
	select {
	case g.subC <- struct{}{}:
	default:
	}
}

// subscriber makes the subscriptions of a shared group's members while the
// stream runs (an own group's run makes its one subscription itself): a
// newcomer is subscribed at once and caught up, and the stream takes its
// subscription at its next message.
func (g *group) subscriber(ctx context.Context) {
	defer g.h.wg.Done()
	bo := backoff.Backoff{Policy: streamPolicy}
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.subC:
		}
		if g.finished() {
			return
		}
		if err := g.subscribeMissing(ctx); err != nil {
			g.h.a.log.Debug("exchange subscribe failed", "url", g.url, "err", err)
			if backoff.Sleep(ctx, max(bo.Next(), retryAfter(err))) != nil {
				return
			}
			g.pokeSubscriber()
			continue
		}
		bo.Reset()
	}
}

func (g *group) finished() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

// remove drops m and unsubscribes it in the background. A mailbox's own
// stream ends at once.
func (g *group) remove(m *member) {
	g.mu.Lock()
	sub, ok := g.subOf[m]
	if !ok {
		g.mu.Unlock()
		return
	}
	delete(g.subOf, m)
	delete(g.subs, sub)
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i:i], g.members[i+1:]...)
			break
		}
	}
	g.reissue = true
	st := g.stream
	target := ews.Target{Impersonate: m.addr, Anchor: g.anchor, Affinity: g.aff}
	if g.own {
		target = m.target
	}
	g.mu.Unlock()
	if g.own && st != nil {
		st.Close()
	}
	g.wake()
	if sub != "" && g.h.ctx.Err() == nil {
		g.h.wg.Go(func() {
			ctx, cancel := context.WithTimeout(g.h.ctx, unsubscribeTimeout)
			defer cancel()
			_ = g.c.Unsubscribe(ctx, target, sub) // it expires on its own otherwise
		})
	}
}

func (g *group) wake() {
	select {
	case g.wakeC <- struct{}{}:
	default:
	}
}

// run serves the group's stream until the group is empty or ctx ends.
func (g *group) run(ctx context.Context) {
	defer g.h.wg.Done()
	defer g.finish()
	var (
		bo        = backoff.Backoff{Policy: streamPolicy}
		gap       bool      // the last stream may have taken notifications with it
		downSince time.Time // when streaming last worked, zero while it does
	)
	for ctx.Err() == nil {
		var err error
		if g.own {
			err = g.subscribeMissing(ctx)
		}
		if err == nil {
			var ids []string
			if ids = g.ids(ctx); ids == nil {
				return
			}
			var st *ews.Stream
			if st, err = g.c.Stream(ctx, g.streamTarget(), ids, g.h.a.opts.StreamMinutes, g.h.a.opts.Idle); err == nil {
				downSince = time.Time{}
				g.setStream(st)
				if gap {
					g.notifyAll()
				}
				var delivered bool
				gap, delivered = g.read(st)
				g.setStream(nil)
				st.Close()
				if delivered {
					bo.Reset()
				}
				if !gap {
					continue
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if downSince.IsZero() {
				downSince = time.Now()
			}
			if g.permanent(err) || time.Since(downSince) > streamDownMax {
				g.failAll(err)
			}
			if errors.Is(err, ews.ErrSubscriptionLost) {
				g.lose(nil)
			}
			g.h.a.log.Debug("exchange stream failed", "url", g.url, "anchor", g.anchor, "err", err)
		}
		if backoff.Sleep(ctx, max(bo.Next(), retryAfter(err))) != nil {
			return
		}
	}
}

// permanent reports whether err will not go away by retrying: the
// credentials or rights were refused.
func (g *group) permanent(err error) bool {
	c := mail.ClassOf(err)
	return c == mail.ClassAuth || c == mail.ClassConfig
}

// failAll fails every member with err.
func (g *group) failAll(err error) {
	if !g.own && mail.ClassOf(err) == mail.ClassAuth {
		err = accountError(err)
	}
	g.mu.Lock()
	members := append([]*member(nil), g.members...)
	g.mu.Unlock()
	for _, m := range members {
		m.Fail(err)
	}
}

// subscribeMissing subscribes the members whose subscription was lost, the
// anchor first, and has each catch up. A member refused for good fails; any
// other failure is returned for a retry.
func (g *group) subscribeMissing(ctx context.Context) error {
	for {
		g.mu.Lock()
		var m *member
		for _, x := range g.members {
			if g.subOf[x] == "" && (m == nil || x.addr == g.anchor) {
				m = x
			}
		}
		g.mu.Unlock()
		if m == nil {
			return nil
		}
		sub, err := g.subscribe(ctx, m)
		if err != nil && !g.permanent(err) {
			return err
		}
		g.mu.Lock()
		_, still := g.subOf[m]
		switch {
		case !still: // left meanwhile
		case err != nil:
			g.dropLocked(m)
		default:
			g.subOf[m] = sub
			g.subs[sub] = m
			g.reissue = true
		}
		g.mu.Unlock()
		if err != nil {
			m.Fail(err)
		} else {
			m.Notify(nil, true)
			g.wake() // a run waiting for subscriptions can stream
		}
	}
}

// dropLocked removes m without unsubscribing; g.mu is held. An anchor that
// could not subscribe hands the role to the next member.
func (g *group) dropLocked(m *member) {
	delete(g.subOf, m)
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i:i], g.members[i+1:]...)
			break
		}
	}
	if m.addr == g.anchor && len(g.members) > 0 && len(g.subs) == 0 {
		g.anchor = g.members[0].addr
	}
}

// lose marks subscriptions as gone (nil: all of them) so that
// subscribeMissing makes them anew. When every one is gone, the backend
// cookie may be stale too: it is dropped and the anchor re-chosen among the
// members.
func (g *group) lose(ids []string) {
	defer g.pokeSubscriber()
	g.mu.Lock()
	defer g.mu.Unlock()
	if ids == nil {
		for _, m := range g.members {
			g.subOf[m] = ""
		}
		clear(g.subs)
		if !g.own && len(g.members) > 0 {
			g.aff.SetCookie("")
			g.anchor = g.members[0].addr
		}
		return
	}
	for _, id := range ids {
		if m, ok := g.subs[id]; ok {
			delete(g.subs, id)
			g.subOf[m] = ""
		}
	}
}

// ids returns the subscription ids to stream, waiting while the group has
// none; nil means the group is over.
func (g *group) ids(ctx context.Context) []string {
	var linger <-chan time.Time
	for {
		g.mu.Lock()
		if len(g.subs) > 0 {
			ids := make([]string, 0, len(g.subs))
			for id := range g.subs {
				ids = append(ids, id)
			}
			g.reissue = false
			g.mu.Unlock()
			return ids
		}
		empty := len(g.members) == 0
		if empty && g.own {
			g.done = true
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		if empty && linger == nil {
			linger = time.After(emptyLinger)
		} else if !empty {
			linger = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.wakeC:
		case <-linger:
			g.mu.Lock()
			if len(g.members) == 0 {
				g.done = true
				g.mu.Unlock()
				return nil
			}
			g.mu.Unlock()
		}
	}
}

func (g *group) setStream(st *ews.Stream) {
	g.mu.Lock()
	g.stream = st
	g.mu.Unlock()
}

// read dispatches the stream's notifications until it ends. gap says it
// ended without Exchange's Closed (notifications may be lost); delivered,
// that any message came at all.
func (g *group) read(st *ews.Stream) (gap, delivered bool) {
	opened := time.Now()
	for {
		msg, err := st.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				g.h.a.log.Debug("exchange stream ended", "url", g.url, "err", err)
			}
			return true, delivered
		}
		delivered = true
		for _, n := range msg.Notifications {
			g.mu.Lock()
			m := g.subs[n.SubscriptionID]
			g.mu.Unlock()
			if m != nil {
				if folders := eventFolders(n.Events); len(folders) > 0 {
					m.Notify(folders, false)
				}
			}
		}
		switch {
		case msg.Err != nil && len(msg.BadIDs) > 0:
			g.lose(msg.BadIDs)
			return false, delivered
		case msg.Err != nil && errors.Is(msg.Err, ews.ErrSubscriptionLost):
			g.lose(nil)
			return false, delivered
		case msg.Err != nil:
			g.h.a.log.Debug("exchange stream error", "url", g.url, "err", msg.Err)
			return true, delivered
		case msg.Status == "Closed":
			return false, delivered
		}
		if time.Since(opened) >= reissueAfter && g.takeReissue() {
			return false, delivered
		}
	}
}

// takeReissue reports (and clears) a change of the subscription ids.
func (g *group) takeReissue() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.reissue
	g.reissue = false
	return r
}

// notifyAll has every subscribed member catch up.
func (g *group) notifyAll() {
	g.mu.Lock()
	members := make([]*member, 0, len(g.subs))
	for _, m := range g.subs {
		members = append(members, m)
	}
	g.mu.Unlock()
	for _, m := range members {
		m.Notify(nil, true)
	}
}

// finish ends the group: nobody joins it any more, and members still in it
// (the hub stopped) are failed so their sessions end.
func (g *group) finish() {
	g.mu.Lock()
	g.done = true
	members := append([]*member(nil), g.members...)
	g.mu.Unlock()
	for _, m := range members {
		m.Fail(errStopped)
	}
	g.pokeSubscriber()
	if !g.own {
		g.h.retire(g)
	}
}

// eventFolders lists the folders that item events of a notification put
// mail into.
func eventFolders(events []ews.Event) []string {
	var out []string
	for _, e := range events {
		if e.ItemID == "" || e.ParentFolderID == "" {
			continue
		}
		switch e.Kind {
		case "NewMail", "Created", "Moved", "Copied":
			out = append(out, e.ParentFolderID)
		}
	}
	return out
}

// retryAfter is the wait the server asked for, capped.
func retryAfter(err error) time.Duration {
	if d, ok := ews.BackOff(err); ok {
		return min(d, maxBusyWait)
	}
	return 0
}
