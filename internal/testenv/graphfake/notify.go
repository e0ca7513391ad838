// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"
)

// Notifications are queued per URL and POSTed by short-lived workers, never more
// than Options.NotifyParallel at once per URL: a change only appends to a queue
// (under Server.mu), a timer of Options.NotifyBatchWindow then starts workers
// that each take up to Options.NotifyMaxBatch queued notifications into one POST.
// A POST not answered 2xx within Options.NotifyTimeout is retried after a
// doubling backoff until Options.NotifyRetryFor has passed since its first
// attempt, then dropped. There is no goroutine per subscription.

// endpoint is the delivery queue of one URL. Guarded by Server.mu.
type endpoint struct {
	url      string
	pending  []notifyItem
	retries  []*notifyBatch
	inflight int
	timerSet bool
}

type notifyItem struct {
	body      json.RawMessage
	lifecycle bool
}

type notifyBatch struct {
	items   []notifyItem
	first   time.Time
	attempt int
}

// notifyTime renders subscriptionExpirationDateTime as Graph does in
// notifications.
func notifyTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000-07:00") }

func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// notifyChange queues change notifications for the subscriptions that watch f (or
// the whole mailbox) for kind. Callers hold s.mu.
func (s *Server) notifyChange(f *folder, m *message, kind changeKind) {
	if s.knobs.dropNotify || s.closed {
		return
	}
	mb := f.mbox
	now := s.opts.Now()
	for sub := range mb.subs {
		if sub.folder != nil && sub.folder != f {
			continue
		}
		if !(kind == chCreated && sub.created || kind == chUpdated && sub.updated || kind == chDeleted && sub.gone) {
			continue
		}
		if !now.Before(sub.expiration) {
			continue // expired: pruned at the next listing
		}
		if g := s.opts.ReauthorizationGrace; g > 0 && !sub.reauthAt.IsZero() && now.Sub(sub.reauthAt) >= g {
			s.stats.dropped++
			continue
		}
		id := s.msgID(m)
		res := "Users/" + mb.id + "/Messages/" + id
		b, _ := marshal(obj{
			{"subscriptionId", sub.id},
			{"subscriptionExpirationDateTime", notifyTime(sub.expiration)},
			{"changeType", kind.String()},
			{"resource", res},
			{"resourceData", obj{
				{"@odata.type", "#Microsoft.Graph.Message"},
				{"@odata.id", res},
				{"@odata.etag", `W/"` + changeKey(mb.num, m.version) + `"`},
				{"id", id},
			}},
			{"clientState", nullable(sub.clientState)},
			{"tenantId", s.opts.Tenant},
		})
		s.enqueue(sub.notifyURL, notifyItem{body: b})
	}
}

// lifecycle queues a lifecycle event for a subscription; without a lifecycle URL
// there is nowhere to send it, as in Graph. Callers hold s.mu.
func (s *Server) lifecycle(sub *subscription, event string) {
	if sub.lifecycleURL == "" {
		s.logf("graphfake: subscription %s has no lifecycleNotificationUrl; %s not sent", sub.id, event)
		return
	}
	b, _ := marshal(obj{
		{"subscriptionId", sub.id},
		{"subscriptionExpirationDateTime", notifyTime(sub.expiration)},
		{"tenantId", s.opts.Tenant},
		{"clientState", nullable(sub.clientState)},
		{"lifecycleEvent", event},
	})
	s.enqueue(sub.lifecycleURL, notifyItem{body: b, lifecycle: true})
}

// enqueue appends to a URL's queue and makes sure a flush is due. Callers hold
// s.mu.
func (s *Server) enqueue(url string, it notifyItem) {
	if s.closed {
		return
	}
	ep := s.endpoints[url]
	if ep == nil {
		ep = &endpoint{url: url}
		s.endpoints[url] = ep
	}
	ep.pending = append(ep.pending, it)
	if !ep.timerSet {
		ep.timerSet = true
		s.afterFunc(s.opts.NotifyBatchWindow, func() {
			ep.timerSet = false
			s.flush(ep)
		})
	}
}

// afterFunc runs f under s.mu after d unless the server has closed meanwhile.
// Callers hold s.mu (so the timer is registered before it can fire).
func (s *Server) afterFunc(d time.Duration, f func()) {
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.timers, t)
		if !s.closed {
			f()
		}
	})
	s.timers[t] = struct{}{}
}

// flush starts workers for due retries, then for queued notifications, up to
// NotifyParallel per URL. Callers hold s.mu.
func (s *Server) flush(ep *endpoint) {
	for !s.closed && ep.inflight < s.opts.NotifyParallel {
		var b *notifyBatch
		switch {
		case len(ep.retries) > 0:
			b, ep.retries = ep.retries[0], ep.retries[1:]
		case len(ep.pending) > 0:
			n := min(len(ep.pending), s.opts.NotifyMaxBatch)
			b = &notifyBatch{items: slices.Clone(ep.pending[:n]), first: time.Now()}
			ep.pending = ep.pending[n:]
			if len(ep.pending) == 0 {
				ep.pending = nil
			}
		default:
			return
		}
		ep.inflight++
		s.workers.Add(1)
		go s.post(ep, b)
	}
}

// post delivers one batch and schedules its retry on failure.
func (s *Server) post(ep *endpoint, b *notifyBatch) {
	defer s.workers.Done()
	var body bytes.Buffer
	body.WriteString(`{"value":[`)
	for i, it := range b.items {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(it.body)
	}
	body.WriteString(`]}`)
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.NotifyTimeout)
	status, errText := 0, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, &body)
	if err == nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		var resp *http.Response
		if resp, err = s.opts.NotifyClient.Do(req); err == nil {
			// Drained (bounded) so the connection can be reused; the deadline covers it.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			status = resp.StatusCode
		}
	}
	if err != nil {
		errText = err.Error()
	}
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.posts++
	for _, it := range b.items {
		if it.lifecycle {
			s.stats.lifecycle++
		} else {
			s.stats.notifications++
		}
	}
	ep.inflight--
	if status < 200 || status > 299 {
		s.stats.postFailures++
		if s.closed {
			return
		}
		delay := s.opts.NotifyRetryInitial
		for i := 0; i < b.attempt && delay < s.opts.NotifyRetryMax; i++ {
			delay *= 2
		}
		delay = min(delay, s.opts.NotifyRetryMax)
		b.attempt++
		if time.Since(b.first)+delay > s.opts.NotifyRetryFor {
			s.stats.dropped += int64(len(b.items))
			s.logf("graphfake: notifications to %s dropped after %d attempts (HTTP %d %s)", ep.url, b.attempt, status, errText)
		} else {
			s.logf("graphfake: notification POST to %s failed (HTTP %d %s); retry in %v", ep.url, status, errText, delay)
			s.afterFunc(delay, func() {
				ep.retries = append(ep.retries, b)
				s.flush(ep)
			})
		}
	}
	s.flush(ep)
}
