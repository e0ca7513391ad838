// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// Messages on the events channel with a meaning to this package.
const (
	// EventNodes is published when a node joins, starts leaving, or leaves;
	// every node then refreshes its view at once instead of at its next beat.
	EventNodes = "nodes"
	// Resync is delivered by Subscribe (never published) when messages may
	// have been lost: after a reconnect to Redis, or when the subscriber's
	// buffer overflowed. The reader should reconcile from the source of truth.
	Resync = "resync"
)

// Publish sends msg to every node's subscribers (this node's included), e.g.
// an Event after a registry change. Delivery is at most once: a node
// that is disconnected from Redis at the time misses it (and gets Resync).
func (m *Membership) Publish(ctx context.Context, msg string) error {
	if msg == Resync {
		return fmt.Errorf("cluster: %q is reserved", Resync)
	}
	if err := m.client.Publish(ctx, m.keys.events(), msg).Err(); err != nil {
		return fmt.Errorf("cluster: publish: %w", err)
	}
	return nil
}

// subscriber is one Subscribe channel. The receiver goroutine sends to it
// under subsMu without blocking; one slot is kept free for Resync.
type subscriber struct {
	ch       chan string
	overflow bool // a Resync was queued for dropped messages; reset by the next queued message
}

// Subscribe returns a channel of the messages on the events channel from now
// on, until ctx ends or Stop; then it is closed. A reader that falls
// SubscriberBuffer messages behind loses messages and receives Resync.
func (m *Membership) Subscribe(ctx context.Context) <-chan string {
	s := &subscriber{ch: make(chan string, m.opts.SubscriberBuffer+1)}
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	if m.closed {
		close(s.ch)
		return s.ch
	}
	m.subs[s] = struct{}{}
	context.AfterFunc(ctx, func() {
		m.subsMu.Lock()
		defer m.subsMu.Unlock()
		if _, ok := m.subs[s]; ok {
			delete(m.subs, s)
			close(s.ch)
		}
	})
	return s.ch
}

// dispatch hands msg to every subscriber without blocking. A message is only
// queued while two slots are free, so that the last one can always take a
// Resync; when a message must be dropped, a Resync is queued instead (once
// until the reader catches up). Only this goroutine sends, so free space can
// only grow behind its back.
func (m *Membership) dispatch(msg string) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for s := range m.subs {
		free := cap(s.ch) - len(s.ch)
		switch {
		case msg != Resync && free > 1:
			s.ch <- msg
			s.overflow = false
		case msg != Resync && s.overflow:
			m.met.eventsDropped.Inc() // a Resync is queued already
		default: // Resync, or no room for msg
			if msg != Resync {
				m.met.eventsDropped.Inc()
			}
			select {
			case s.ch <- Resync:
				s.overflow = true
			default: // full: the last queued message is a Resync
			}
		}
	}
}

func (m *Membership) closeSubscribers() {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	m.closed = true
	for s := range m.subs {
		delete(m.subs, s)
		close(s.ch)
	}
}

// receive is the receiver goroutine: it reads the events channel until ctx
// ends. Start consumed the first subscription confirmation (or failed to);
// every confirmation seen here means go-redis (re)connected and subscribed
// after Start, so messages may have been lost in between.
func (m *Membership) receive(ctx context.Context) {
	defer close(m.recvDone)
	for m.receiveSafe(ctx) {
	}
}

func (m *Membership) receiveSafe(ctx context.Context) (panicked bool) {
	defer m.opts.Panics.Recover(m.log, "cluster", &panicked)
	wait, lastErr := time.Duration(0), ""
	for ctx.Err() == nil {
		msg, err := m.pubsub.ReceiveTimeout(ctx, m.opts.TTL)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: ping, so a dead connection is noticed and redialled.
				_ = m.pubsub.Ping(ctx)
				continue
			}
			if err.Error() != lastErr {
				lastErr = err.Error()
				m.log.Warn("cluster events: receive failed; reconnecting", "err", err)
			}
			// go-redis redials on the next receive; without a pause a down
			// Redis would make this loop spin.
			wait = min(max(2*wait, 50*time.Millisecond), time.Second)
			if sleep(ctx, wait) != nil {
				return false
			}
			continue
		}
		wait, lastErr = 0, ""
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind != "subscribe" {
				continue
			}
			m.log.Info("cluster events: resubscribed; telling subscribers to resync")
			m.dispatch(Resync)
			m.kickRefresh()
		case *redis.Message:
			m.met.eventsReceived.Inc()
			if msg.Payload == EventNodes {
				m.kickRefresh()
			}
			m.dispatch(msg.Payload)
		}
	}
	return false
}

func (m *Membership) kickRefresh() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// sleep waits d of real time (a reconnect pause, not a judgement of time).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
