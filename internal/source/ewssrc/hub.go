// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Implementation notes for the hub.
//
//   - A group is one GetStreamingEvents connection and the subscriptions it
//     carries, served by one goroutine (group.run) that owns the stream.
//     Without an impersonation account every mailbox is a group of its own,
//     subscribed and streamed with its own credentials. With one, mailboxes
//     of the same EWS URL and Autodiscover grouping share groups of up to
//     GroupSize: the account subscribes each member impersonating it, with
//     the group's anchor as X-AnchorMailbox and the backend cookie the
//     anchor's Subscribe returned, so every subscription of the group lives
//     on the backend the stream reads from.
//   - A stream's subscription ids are fixed for its lifetime, so a member who
//     joins is picked up when the group re-issues the stream. It does so
//     between two messages (a heartbeat comes at least every 45 s), never in
//     the middle of one; the server queues the newcomer's events meanwhile.
//     A member who leaves is dropped at the next re-issue and unsubscribed.
//   - A stream that ends without Exchange's Closed message (cut, idle, error)
//     may have taken notifications with it: once a new stream is up, every
//     member catches up from its SyncState. A lost subscription (server
//     restart, expiry, lost affinity) is subscribed anew and its member
//     catches up too.
//   - A member fails, ending its session so the syncer retries and reports
//     it, when its subscription is refused for good (credentials, rights) or
//     when its stream has been down for streamDownMax.

// eventTypes are the item events that may bring new mail into a folder.
var eventTypes = []string{"NewMailEvent", "CreatedEvent", "MovedEvent", "CopiedEvent"}

const (
	// reissueAfter is the least time between two streams of a group, so
	// that a burst of joins costs one re-issue.
	reissueAfter = time.Second
	// emptyLinger keeps a shared group's goroutine for a while after its
	// last member left, for the next one to join.
	emptyLinger = 30 * time.Second
	// streamDownMax is how long a stream may fail before its members do.
	streamDownMax = 5 * time.Minute
)

// hub holds the groups.
type hub struct {
	a *Adapter

	mu      sync.Mutex
	ctx     context.Context // nil until start, canceled by stop
	cancel  context.CancelFunc
	groups  map[string][]*group    // shared groups by key
	service map[string]*ews.Client // the impersonation account's client per URL
	wg      sync.WaitGroup
}

func newHub(a *Adapter) *hub {
	return &hub{a: a, groups: map[string][]*group{}, service: map[string]*ews.Client{}}
}

func (h *hub) start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx != nil {
		return errors.New("ewssrc: hub already started")
	}
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return nil
}

func (h *hub) stop(ctx context.Context) error {
	h.mu.Lock()
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errStopped refuses joins before Start and after Stop.
var errStopped = mail.Errorf(mail.ClassInternal, "subscribe", "the Exchange streaming hub is not running")

// join adds s's folders as a member of a group, which subscribes them: no
// I/O here, so the caller's goroutine keeps a shallow stack. The member is
// told to catch up once its subscription exists.
func (h *hub) join(s *Session, folders []string) (*member, error) {
	m := newMember(s.addr, folders, s.c, s.t)
	if h.a.opts.Impersonation == nil {
		g := newGroup(h, "", s.url, s.c, s.addr, true)
		g.add(m)
		if err := h.spawn(g); err != nil {
			return nil, err
		}
		return m, nil
	}
	key := s.url + "\x00" + s.group
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil || h.ctx.Err() != nil {
		return nil, errStopped
	}
	for _, g := range h.groups[key] {
		if g.tryAdd(m, h.a.opts.GroupSize) {
			return m, nil
		}
	}
	c, err := h.serviceClient(s.url)
	if err != nil {
		return nil, err
	}
	g := newGroup(h, key, s.url, c, s.addr, false)
	g.add(m)
	h.groups[key] = append(h.groups[key], g)
	h.wg.Add(2)
	go g.run(h.ctx)
	go g.subscriber(h.ctx)
	return m, nil
}

// spawn starts an own-connection group's goroutine.
func (h *hub) spawn(g *group) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil || h.ctx.Err() != nil {
		return errStopped
	}
	h.wg.Add(1)
	go g.run(h.ctx)
	return nil
}

// retire forgets a shared group whose goroutine ends.
func (h *hub) retire(g *group) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.groups[g.key]
	for i, x := range list {
		if x == g {
			h.groups[g.key] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(h.groups[g.key]) == 0 {
		delete(h.groups, g.key)
	}
}

// serviceClient returns the impersonation account's client for url; h.mu is
// held.
func (h *hub) serviceClient(url string) (*ews.Client, error) {
	if c, ok := h.service[url]; ok {
		return c, nil
	}
	acct := h.a.opts.Impersonation
	t := h.a.opts.Transport.Clone()
	// One account makes every Subscribe and stream of the URL: keep enough
	// idle connections for the bursts of subscriptions at start-up.
	t.MaxIdleConnsPerHost = 16
	c, err := ews.New(ews.Options{URL: url, Transport: t, Auth: ews.Auth{Scheme: h.a.opts.Auth, User: acct.User, Password: acct.Password},
		Version: h.a.opts.Version, Timeout: h.a.opts.Timeout})
	if err != nil {
		return nil, err
	}
	h.service[url] = c
	return c, nil
}

// accountError says a failure of the impersonation account is not the
// mailbox's.
func accountError(err error) error {
	class := mail.ClassOf(err)
	if class == mail.ClassAuth {
		class = mail.ClassConfig
	}
	return mail.Wrap(class, "impersonation account", fmt.Errorf("the Exchange impersonation account (EL_EWS_IMPERSONATION_USER) failed: %w", err))
}
