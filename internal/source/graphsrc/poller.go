// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/graph"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source/wake"
)

// Implementation notes for the poller.
//
//   - One goroutine (run) owns the schedule: every tick it takes the members
//     whose poll is due, groups their folders' delta requests by client (the
//     application's client carries every mailbox of the tenant; a mailbox
//     with its own token has its own), and sends them as JSON batches of up
//     to graph.MaxBatch requests, at most batchParallel batches at once.
//   - A page with news (a message, or more pages) is handed to the session
//     (prefetched) and the member is told which folder has news; Changes
//     then uses the page instead of asking again, so a poll that finds mail
//     costs no extra request. An empty page with a newer deltaLink is
//     handed over only when the folder's link is older than linkRefresh, so
//     that cursors stay fresh without a store write at every poll.
//   - A member's polls are spread over the interval by its join time, so
//     ten thousand mailboxes make a steady stream of batches, not a burst.
//   - Throttling postpones the member's next poll by what Graph asked; an
//     expired link or a failed request wakes the member, whose Changes
//     meets the condition itself (and resyncs, or fails so that the syncer
//     retries and reports it).

const (
	tick          = time.Second
	batchParallel = 8
	linkRefresh   = time.Hour
	// pollFailures is how many polls in a row may fail before the member's
	// session is woken to meet the error itself.
	pollFailures = 3
)

// member is one mailbox the poller watches.
type member struct {
	*wake.Box
	s *Session

	// owned by the poller's goroutine
	due     time.Time
	fails   int
	fresh   map[string]time.Time // by folder: when its link was last handed over
	running bool                 // a poll of it is in flight

	subs *subscriptions // webhook mode: the folders' notification subscriptions
}

// poller runs the polls of every waiting mailbox.
type poller struct {
	a *Adapter

	mu      sync.Mutex
	ctx     context.Context // nil until start, canceled by stop
	cancel  context.CancelFunc
	members map[*member]struct{}
	wg      sync.WaitGroup
	hook    *webhook // nil without a notification URL
}

func newPoller(a *Adapter) *poller {
	p := &poller{a: a, members: map[*member]struct{}{}}
	if a.opts.NotificationURL != "" {
		p.hook = newWebhook(a)
	}
	return p
}

func (p *poller) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx != nil {
		return errors.New("graphsrc: poller already started")
	}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Add(1)
	go p.run(p.ctx)
	return nil
}

func (p *poller) stop(ctx context.Context) error {
	p.mu.Lock()
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if p.hook != nil {
		p.hook.close(ctx)
	}
	return err
}

// errStopped refuses joins before Start and after Stop.
var errStopped = mail.Errorf(mail.ClassInternal, "watch", "the Graph poller is not running")

// interval is how often m is polled.
func (p *poller) interval(m *member) time.Duration {
	if m.subs != nil && m.subs.live() {
		return p.a.opts.PollInterval * time.Duration(p.a.opts.SafetyPolls)
	}
	return p.a.opts.PollInterval
}

// join watches s's folders. The member is told to catch up every folder at
// once: what arrived before the watch began is caught up.
func (p *poller) join(s *Session, folders []string) (*member, error) {
	m := &member{Box: wake.New(folders), s: s, fresh: map[string]time.Time{}}
	p.mu.Lock()
	if p.ctx == nil || p.ctx.Err() != nil {
		p.mu.Unlock()
		return nil, errStopped
	}
	m.due = time.Now().Add(p.a.opts.PollInterval)
	p.members[m] = struct{}{}
	ctx := p.ctx
	p.mu.Unlock()
	if p.hook != nil {
		m.subs = p.hook.subscribe(ctx, m)
	}
	m.Notify(nil, true)
	return m, nil
}

// leave stops watching m.
func (p *poller) leave(m *member) {
	p.mu.Lock()
	delete(p.members, m)
	p.mu.Unlock()
	if m.subs != nil {
		p.hook.unsubscribe(m.subs)
	}
	m.Fail(errLeft)
}

var errLeft = errors.New("graphsrc: watch ended")

// run polls due members every tick until ctx ends.
func (p *poller) run(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	sem := make(chan struct{}, batchParallel)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.pollDue(ctx, now, sem)
			if p.hook != nil {
				p.hook.maintain(ctx, now)
			}
		}
	}
}

// polled is one folder's request of a poll.
type polled struct {
	m      *member
	folder string
	link   string
}

// pollDue sends the delta requests of the members due at now.
func (p *poller) pollDue(ctx context.Context, now time.Time, sem chan struct{}) {
	byClient := map[*graph.Client][]polled{}
	p.mu.Lock()
	for m := range p.members {
		if m.running || now.Before(m.due) {
			continue
		}
		links := m.s.links(m.Folders())
		if len(links) == 0 {
			m.due = now.Add(p.interval(m))
			continue // still in its first round: the session is busy anyway
		}
		m.running = true
		for f, l := range links {
			byClient[m.s.c] = append(byClient[m.s.c], polled{m: m, folder: f, link: l})
		}
	}
	p.mu.Unlock()
	for c, list := range byClient {
		for len(list) > 0 {
			n := min(len(list), graph.MaxBatch)
			chunk := list[:n:n]
			list = list[n:]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				p.finish(chunk, nil, ctx.Err(), now)
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer func() { <-sem }()
				p.send(ctx, c, chunk, now)
			}()
		}
	}
}

// send runs one batch and hands the results to their members.
func (p *poller) send(ctx context.Context, c *graph.Client, list []polled, now time.Time) {
	reqs := make([]graph.DeltaRequest, len(list))
	for i, x := range list {
		reqs[i] = graph.DeltaRequest{User: x.m.s.user, Folder: x.folder, Link: x.link, PageSize: livePage, ChangeType: "created"}
	}
	res, err := c.DeltaBatch(ctx, reqs)
	p.finish(list, res, err, now)
}

// finish applies a batch's results.
func (p *poller) finish(list []polled, res []graph.DeltaResult, err error, now time.Time) {
	type outcome struct {
		news    []string
		all     bool
		wait    time.Duration
		failed  error
		settled bool
	}
	per := map[*member]*outcome{}
	// p.mu guards the members' schedules (fresh), which batches of one
	// member's folders may finish at once.
	p.mu.Lock()
	for i, x := range list {
		o := per[x.m]
		if o == nil {
			o = &outcome{}
			per[x.m] = o
		}
		var r graph.DeltaResult
		if err != nil || i >= len(res) {
			r.Err = err
			if r.Err == nil {
				r.Err = mail.Errorf(mail.ClassProtocol, "graph batch", "no response for a request")
			}
		} else {
			r = res[i]
		}
		switch {
		case r.Err == nil:
			o.settled = true
			if hasNews(r.Page) || (r.Page.DeltaLink != x.link && now.Sub(x.m.fresh[x.folder]) > linkRefresh) {
				x.m.s.prefetched(x.folder, x.link, r.Page)
				x.m.fresh[x.folder] = now
				o.news = append(o.news, x.folder)
			}
		case errors.Is(r.Err, graph.ErrSyncReset):
			o.news = append(o.news, x.folder) // Changes resyncs
		default:
			if d, ok := throttled(r.Err); ok {
				o.wait = max(o.wait, d, time.Second)
				continue
			}
			if mail.ClassOf(r.Err) == mail.ClassAuth {
				o.all = true // the session meets it and the syncer refreshes the token
				continue
			}
			o.failed = r.Err
		}
	}
	for m, o := range per {
		m.running = false
		m.due = now.Add(p.interval(m) + o.wait)
		switch {
		case o.failed != nil && !o.settled:
			if m.fails++; m.fails >= pollFailures {
				m.fails = 0
				o.all = true
				p.a.log.Warn("graph polls keep failing", "mailbox", m.s.mb.ID, "err", o.failed)
			}
		default:
			m.fails = 0
		}
	}
	p.mu.Unlock()
	for m, o := range per {
		if o.all || len(o.news) > 0 {
			m.Notify(o.news, o.all)
		}
	}
}

// hasNews reports whether a delta page has something for Changes: a message
// or more pages.
func hasNews(p *graph.DeltaPage) bool {
	if p.Next != "" {
		return true
	}
	for _, m := range p.Messages {
		if !m.Removed {
			return true
		}
	}
	return false
}
