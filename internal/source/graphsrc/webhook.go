// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/graph"
)

// Implementation notes for change notifications.
//
//   - Each watched folder of a waiting mailbox gets a subscription for
//     created messages, with a clientState of its own: a notification is
//     believed only when it names a subscription this process made and
//     carries that subscription's secret.
//   - Graph validates the notification URL while the subscription is being
//     created (a POST with validationToken that must be echoed within 10 s),
//     so the handler answers validations without any state.
//   - A notification only wakes its mailbox: the folder's delta round, not
//     the notification, decides what is delivered. A lost notification (the
//     URL down, "missed", the relay busy) delays mail until the next safety
//     poll and loses none.
//   - In a cluster, Graph posts to whichever replica the load balancer
//     picks. Notifications for subscriptions this process does not know are
//     handed to the Relay (at most relayParallel publishes at once, else
//     dropped), which brings them to every replica; the one that made the
//     subscription checks its clientState as if Graph had posted to it. A
//     relayed notification is never relayed again.
//   - Subscriptions are renewed when half their lifetime has passed,
//     reauthorized when Graph asks (reauthorizationRequired), and made anew
//     when Graph removed them (subscriptionRemoved).
//   - Subscribing, renewing and deleting run in their own goroutines, at most
//     hookParallel at once, never in the handler or the poller's loop.

const (
	// subLifetime is asked for each subscription: Outlook messages allow
	// 4230 minutes; a little less leaves room for clock skew.
	subLifetime = 4200 * time.Minute
	// hookParallel bounds subscription calls in flight.
	hookParallel = 16
	// maxNotificationBody bounds a notification POST (Graph sends at most a
	// few hundred notifications of about 1 KiB each).
	maxNotificationBody = 1 << 20
	hookCallTimeout     = 30 * time.Second
	// relayParallel bounds relay publishes in flight; relayTimeout bounds
	// one (a notification only saves waiting for the safety poll).
	relayParallel = 4
	relayTimeout  = 5 * time.Second
)

// webhook holds the notification subscriptions and serves the URL.
type webhook struct {
	a    *Adapter
	url  string
	path string
	sem  chan struct{}
	wg   sync.WaitGroup
	// relays holds a slot per relay publish in flight (relayParallel).
	relays chan struct{}

	mu   sync.Mutex
	byID map[string]*sub
}

// sub is one folder's subscription.
type sub struct {
	id, folder, state string
	expires           time.Time
	m                 *member
	busy              bool // a renewal or reauthorization is in flight
}

// subscriptions are a member's subscriptions.
type subscriptions struct {
	mu   sync.Mutex
	list []*sub
	want int  // folders to subscribe
	gone bool // the member left
}

// live reports whether every watched folder has a subscription.
func (s *subscriptions) live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.gone && len(s.list) == s.want
}

func newWebhook(a *Adapter) *webhook {
	w := &webhook{a: a, url: a.opts.NotificationURL, sem: make(chan struct{}, hookParallel), byID: map[string]*sub{},
		relays: make(chan struct{}, relayParallel)}
	if u, err := url.Parse(a.opts.NotificationURL); err == nil {
		w.path = u.EscapedPath()
	}
	if w.path == "" {
		w.path = "/"
	}
	return w
}

// NotificationPath is the path of the notification URL the service must
// answer on ("" without one).
func (a *Adapter) NotificationPath() string {
	if a.poll.hook == nil {
		return ""
	}
	return a.poll.hook.path
}

// Handler serves the notification URL: Graph's validation requests and its
// change and lifecycle notifications. nil without a notification URL.
func (a *Adapter) Handler() http.Handler {
	if a.poll.hook == nil {
		return nil
	}
	return a.poll.hook
}

// async runs f in a goroutine of its own, at most hookParallel at once.
func (w *webhook) async(ctx context.Context, f func(ctx context.Context)) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		select {
		case w.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-w.sem }()
		ctx, cancel := context.WithTimeout(ctx, hookCallTimeout)
		defer cancel()
		f(ctx)
	}()
}

// subscribe makes the subscriptions of m's folders, in the background.
func (w *webhook) subscribe(ctx context.Context, m *member) *subscriptions {
	subs := &subscriptions{want: len(m.Folders())}
	for _, f := range m.Folders() {
		w.async(ctx, func(ctx context.Context) { w.create(ctx, m, subs, f) })
	}
	return subs
}

// create subscribes one folder.
func (w *webhook) create(ctx context.Context, m *member, subs *subscriptions, folder string) {
	state := newState()
	x, err := m.s.c.Subscribe(ctx, m.s.user, folder, w.url, w.url, state, time.Now().Add(subLifetime))
	if err != nil {
		w.a.log.Warn("graph change notifications unavailable for a folder, polling it", "mailbox", m.s.mb.ID, "err", err)
		return
	}
	s := &sub{id: x.ID, folder: folder, state: state, expires: x.Expires, m: m}
	subs.mu.Lock()
	gone := subs.gone
	if !gone {
		subs.list = append(subs.list, s)
	}
	subs.mu.Unlock()
	if gone {
		_ = m.s.c.Unsubscribe(ctx, x.ID)
		return
	}
	w.mu.Lock()
	w.byID[x.ID] = s
	w.mu.Unlock()
	// What arrived while the subscription was made.
	m.Notify([]string{folder}, false)
}

// unsubscribe deletes a member's subscriptions, in the background.
func (w *webhook) unsubscribe(subs *subscriptions) {
	subs.mu.Lock()
	subs.gone = true
	list := subs.list
	subs.list = nil
	subs.mu.Unlock()
	w.mu.Lock()
	for _, s := range list {
		delete(w.byID, s.id)
	}
	w.mu.Unlock()
	for _, s := range list {
		c := s.m.s.c
		w.async(context.Background(), func(ctx context.Context) { _ = c.Unsubscribe(ctx, s.id) })
	}
}

// maintain renews subscriptions past half their lifetime; it runs on the
// poller's goroutine.
func (w *webhook) maintain(ctx context.Context, now time.Time) {
	w.mu.Lock()
	var due []*sub
	for _, s := range w.byID {
		if !s.busy && s.expires.Sub(now) < subLifetime/2 {
			s.busy = true
			due = append(due, s)
		}
	}
	w.mu.Unlock()
	for _, s := range due {
		w.async(ctx, func(ctx context.Context) { w.renew(ctx, s) })
	}
}

// renew extends a subscription, or makes it anew when Graph lost it.
func (w *webhook) renew(ctx context.Context, s *sub) {
	exp, err := s.m.s.c.Renew(ctx, s.id, time.Now().Add(subLifetime))
	w.mu.Lock()
	s.busy = false
	if err == nil {
		s.expires = exp
	}
	w.mu.Unlock()
	if errors.Is(err, graph.ErrNotFound) {
		w.replace(ctx, s)
	} else if err != nil {
		w.a.log.Warn("graph subscription renewal failed", "mailbox", s.m.s.mb.ID, "err", err)
	}
}

// replace makes a new subscription for a removed one's folder and has the
// mailbox catch up what the gap may have hidden.
func (w *webhook) replace(ctx context.Context, s *sub) {
	subs := s.m.subs
	w.mu.Lock()
	delete(w.byID, s.id)
	w.mu.Unlock()
	subs.mu.Lock()
	for i, x := range subs.list {
		if x == s {
			subs.list = append(subs.list[:i:i], subs.list[i+1:]...)
			break
		}
	}
	gone := subs.gone
	subs.mu.Unlock()
	s.m.Notify([]string{s.folder}, false)
	if !gone {
		w.create(ctx, s.m, subs, s.folder)
	}
}

// ServeHTTP answers Graph's validation requests and notifications. It only
// records: every call it causes runs in the background, so Graph gets its
// 202 at once (it drops endpoints that are slow to answer).
func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if tok, ok := graph.ValidationToken(r); ok {
		graph.ValidationResponse(rw, tok)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", "POST")
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	list, err := graph.ParseNotifications(http.MaxBytesReader(rw, r.Body, maxNotificationBody), maxNotificationBody)
	if err != nil {
		http.Error(rw, "not a Graph notification", http.StatusBadRequest)
		return
	}
	if foreign := w.dispatch(context.WithoutCancel(r.Context()), list); len(foreign) > 0 {
		w.relay(foreign)
	}
	rw.WriteHeader(http.StatusAccepted)
}

// Relayed takes notifications another replica (or this one) relayed: those
// for this process's subscriptions are acted on as if Graph had posted
// them here; the rest belong to other replicas.
func (a *Adapter) Relayed(body []byte) {
	w := a.poll.hook
	if w == nil {
		return
	}
	list, err := graph.ParseNotifications(bytes.NewReader(body), maxNotificationBody)
	if err != nil {
		a.log.Warn("a relayed graph notification cannot be read", "err", err)
		return
	}
	w.dispatch(context.Background(), list)
}

// dispatch acts on the notifications for this process's subscriptions and
// returns those for subscriptions it does not know (another replica's, a
// deleted one's late ones, or forgeries).
func (w *webhook) dispatch(ctx context.Context, list []graph.Notification) (foreign []graph.Notification) {
	forged := 0
	for _, n := range list {
		w.mu.Lock()
		s := w.byID[n.SubscriptionID]
		w.mu.Unlock()
		if s == nil {
			foreign = append(foreign, n)
			continue
		}
		if subtle.ConstantTimeCompare([]byte(n.ClientState), []byte(s.state)) != 1 {
			forged++
			continue
		}
		switch n.LifecycleEvent {
		case "", graph.LifecycleMissed: // a change, or changes Graph could not send: the delta round finds them
			s.m.Notify([]string{s.folder}, false)
		case graph.LifecycleReauthorizationRequired:
			w.async(ctx, func(ctx context.Context) {
				if err := s.m.s.c.Reauthorize(ctx, s.id); err != nil {
					w.renew(ctx, s)
				}
			})
		case graph.LifecycleSubscriptionRemoved:
			w.async(ctx, func(ctx context.Context) { w.replace(ctx, s) })
		}
	}
	if forged > 0 {
		w.a.log.Debug("graph notifications with a wrong clientState ignored", "count", forged)
	}
	return foreign
}

// relay hands notifications this process cannot check to the other
// replicas, in the background; without a relay, or with relayParallel
// publishes in flight, they are dropped: the mail is found by polling.
func (w *webhook) relay(list []graph.Notification) {
	r := w.a.opts.Relay
	if r == nil {
		w.a.log.Debug("graph notifications not for this process", "count", len(list))
		return
	}
	select {
	case w.relays <- struct{}{}:
	default:
		w.a.log.Debug("graph notifications not relayed: relay busy", "count", len(list))
		return
	}
	body := graph.MarshalNotifications(list)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.relays }()
		ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
		defer cancel()
		if err := r.Forward(ctx, body); err != nil {
			w.a.log.Warn("graph notifications not relayed to the other replicas", "count", len(list), "err", err)
		}
	}()
}

// close deletes every subscription, within ctx.
func (w *webhook) close(ctx context.Context) {
	w.mu.Lock()
	list := make([]*sub, 0, len(w.byID))
	for _, s := range w.byID {
		list = append(list, s)
	}
	w.byID = map[string]*sub{}
	w.mu.Unlock()
	for _, s := range list {
		w.async(ctx, func(ctx context.Context) { _ = s.m.s.c.Unsubscribe(ctx, s.id) })
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// newState is a subscription's clientState: 128 random bits.
func newState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
