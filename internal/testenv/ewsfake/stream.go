// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"net/http"
	"slices"

	"time"
)

// GetStreamingEvents. The response is HTTP 200 with a chunked body carrying a
// sequence of complete SOAP envelopes, one per chunk, each flushed as soon as it is
// written:
//
//   - notifications: m:Notifications with one m:Notification per subscription that
//     has events (at most 50 events each, MoreEvents when more are waiting);
//   - heartbeats: a Success message with only m:ConnectionStatus OK, after
//     Heartbeat of silence;
//   - at the end of the connection's lifetime: m:ConnectionStatus Closed, then the
//     body ends;
//   - when a subscription dies while attached (ExpireSubscriptions, Unsubscribe of
//     all, takeover): an Error message naming it in m:ErrorSubscriptionIds, with
//     ConnectionStatus Closed.
//
// The first envelope carries an XML declaration; later ones only with
// Options.DeclEveryEnvelope.

// maxStreamSubscriptions is how many subscriptions one connection may serve.
const maxStreamSubscriptions = 200

// stream is one open GetStreamingEvents connection. Its fields are guarded by s.mu;
// its handler goroutine is the only writer to the connection and is woken by kick.
type stream struct {
	subs    []*subscription
	kick    chan struct{}
	budget  string
	conn    *connState
	ms      bool
	drop    bool     // write half an envelope, then cut the connection
	cut     bool     // cut the connection now
	lost    []string // subscriptions that died while attached
	stopped bool     // the stream ended; no more wakes needed
}

func (st *stream) wake() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// streamAction is what the stream goroutine does next, decided under s.mu and
// carried out without it.
type streamAction struct {
	payload []byte        // an envelope to write
	half    bool          // write only half of payload, then cut
	cut     bool          // cut the connection without writing
	final   bool          // end the response after payload
	wait    time.Duration // sleep this long unless woken (0: step again at once)
}

func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, c *caller, op *node) {
	if err := checkSeq(op, one(nsMsg, "SubscriptionIds"), one(nsMsg, "ConnectionTimeout")); err != nil {
		s.faultOut(w, err.(*fault))
		return
	}
	idsNode := op.child(nsMsg, "SubscriptionIds")
	if err := checkSeq(idsNode, many(nsTypes, "SubscriptionId")); err != nil {
		s.faultOut(w, err.(*fault))
		return
	}
	minutes, err := intText(op.child(nsMsg, "ConnectionTimeout"), 1, 30)
	if err != nil {
		s.faultOut(w, err.(*fault))
		return
	}
	var ids []string
	for _, k := range idsNode.kids {
		if id := k.value(); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	lifetime := time.Duration(minutes) * time.Minute
	if s.opts.ConnectionLifetime > 0 {
		lifetime = s.opts.ConnectionLifetime
	}
	st, refusal := s.openStream(c, stateOf(r), ids)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	if refusal != nil {
		s.trace("response", refusal)
		_, _ = w.Write(refusal)
		return
	}
	defer s.closeStream(st)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// Headers go out at once: the client sees the stream open before any event.
	if rc.Flush() != nil {
		return
	}
	start := time.Now()
	hbDue, deadline := start.Add(s.opts.Heartbeat), start.Add(lifetime)
	first := true
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-st.kick:
		case <-timer.C:
		}
		for {
			a := s.streamStep(st, time.Now(), &hbDue, deadline, first)
			if a.cut {
				st.conn.cut()
				return
			}
			if a.payload != nil && a.half {
				s.trace("stream (cut)", a.payload)
				s.cutMidChunk(rc, st, a.payload)
				return
			}
			if a.payload != nil {
				s.trace("stream", a.payload)
				if _, err := w.Write(a.payload); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
				first = false
			}
			if a.final {
				return
			}
			if a.wait > 0 {
				timer.Reset(a.wait)
				break
			}
		}
	}
}

// cutMidChunk announces a chunk for the whole envelope, sends its first half and
// closes the TCP connection: what a client sees when a connection dies in the middle
// of a notification. The connection is taken over from net/http for that, because
// its chunk writer only ever writes complete chunks.
func (s *Server) cutMidChunk(rc *http.ResponseController, st *stream, p []byte) {
	defer st.conn.cut()
	_, bw, err := rc.Hijack()
	if err != nil {
		s.logf("ewsfake: cutting a stream: %v", err)
		return
	}
	fmt.Fprintf(bw, "%x\r\n", len(p))
	_, _ = bw.Write(p[:len(p)/2])
	_ = bw.Flush()
}

// openStream validates the subscriptions and the connection budget and attaches the
// subscriptions to a new stream. On refusal it returns the single error envelope to
// answer with.
func (s *Server) openStream(c *caller, cs *connState, ids []string) (*stream, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) > maxStreamSubscriptions {
		return nil, s.streamError(errMsg("ErrorInvalidArgument", "A streaming connection can serve at most %d subscriptions.", maxStreamSubscriptions), nil, true)
	}
	now := time.Now()
	var bad []string
	var code *ewsError
	var subs []*subscription
	for _, id := range ids {
		sub := s.lookupSub(id, now)
		switch {
		case sub == nil || sub.pull || sub.backend != c.backend:
			// A subscription on another backend is invisible here: that is what losing
			// affinity looks like.
			bad = append(bad, id)
			if code == nil {
				code = errSubNotFound
			}
		case !sub.mayUse(c):
			bad = append(bad, id)
			code = errSubAccessDenied
		default:
			subs = append(subs, sub)
		}
	}
	if len(bad) > 0 {
		return nil, s.streamError(code, bad, true)
	}
	budget := c.budget()
	if s.stats.streamsBy[budget] >= s.opts.HangingConnectionLimit {
		return nil, s.streamError(errConnCount, nil, true)
	}
	st := &stream{subs: subs, kick: make(chan struct{}, 1), budget: budget, conn: cs, ms: c.ms}
	for _, sub := range subs {
		if old := sub.stream; old != nil {
			// A subscription serves one connection at a time; the newer one takes it.
			old.subs = slices.DeleteFunc(old.subs, func(x *subscription) bool { return x == sub })
			old.wake()
		}
		sub.stream = st
	}
	s.streams[st] = struct{}{}
	s.stats.streamOpened(budget, len(s.streams))
	return st, nil
}

// closeStream detaches the stream's subscriptions (their idle timers start).
func (s *Server) closeStream(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, sub := range st.subs {
		if sub.stream == st {
			sub.stream = nil
			sub.idleSince = now
		}
	}
	st.stopped = true
	delete(s.streams, st)
	s.stats.streamClosed(st.budget)
}

// streamStep decides the stream's next action. Callers must not hold s.mu.
func (s *Server) streamStep(st *stream, now time.Time, hbDue *time.Time, deadline time.Time, first bool) streamAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	decl := first || s.opts.DeclEveryEnvelope
	switch {
	case st.cut:
		return streamAction{cut: true}
	case st.drop:
		p := s.notificationEnvelope(st, decl)
		if p == nil {
			p = s.statusEnvelope("OK", decl)
		}
		return streamAction{payload: p, half: true}
	case now.Before(s.knobs.stallUntil):
		return streamAction{wait: s.knobs.stallUntil.Sub(now)}
	case len(st.lost) > 0:
		return streamAction{payload: s.streamError(errSubNotFound, st.lost, decl), final: true}
	}
	if p := s.notificationEnvelope(st, decl); p != nil {
		*hbDue = now.Add(s.opts.Heartbeat)
		return streamAction{payload: p} // step again: more events or the deadline
	}
	switch {
	case len(st.subs) == 0 || !now.Before(deadline):
		return streamAction{payload: s.statusEnvelope("Closed", decl), final: true}
	case !now.Before(*hbDue):
		*hbDue = now.Add(s.opts.Heartbeat)
		return streamAction{payload: s.statusEnvelope("OK", decl), wait: min(hbDue.Sub(now), deadline.Sub(now))}
	}
	return streamAction{wait: min(hbDue.Sub(now), deadline.Sub(now))}
}

// notificationEnvelope dequeues up to 50 events per subscription into one envelope,
// or returns nil when nothing is queued. Callers hold s.mu.
func (s *Server) notificationEnvelope(st *stream, decl bool) []byte {
	var b xw
	started := false
	for _, sub := range st.subs {
		if len(sub.queue) == 0 {
			continue
		}
		if !started {
			envelopeStart(&b, decl)
			responseStart(&b, "GetStreamingEvents")
			msgStart(&b, "GetStreamingEvents", nil)
			b.open("m:Notifications")
			started = true
		}
		n := min(len(sub.queue), maxEventsPerNotification)
		b.open("m:Notification")
		b.leaf("t:SubscriptionId", sub.id)
		if n < len(sub.queue) {
			b.leaf("t:MoreEvents", "true")
		}
		for i := range sub.queue[:n] {
			writeEvent(&b, &sub.queue[i], "", st.ms)
		}
		b.end("m:Notification")
		if n == len(sub.queue) {
			sub.queue = nil
		} else {
			sub.queue = sub.queue[n:]
		}
	}
	if !started {
		return nil
	}
	b.end("m:Notifications")
	msgEnd(&b, "GetStreamingEvents")
	responseEnd(&b, "GetStreamingEvents")
	envelopeEnd(&b)
	return b.Bytes()
}

// statusEnvelope is a heartbeat ("OK") or the closing message ("Closed").
func (s *Server) statusEnvelope(status string, decl bool) []byte {
	var b xw
	envelopeStart(&b, decl)
	responseStart(&b, "GetStreamingEvents")
	msgStart(&b, "GetStreamingEvents", nil)
	b.leaf("m:ConnectionStatus", status)
	msgEnd(&b, "GetStreamingEvents")
	responseEnd(&b, "GetStreamingEvents")
	envelopeEnd(&b)
	return b.Bytes()
}

// streamError is an Error message listing the failed subscriptions (if any) and
// closing the connection.
func (s *Server) streamError(e *ewsError, ids []string, decl bool) []byte {
	var b xw
	envelopeStart(&b, decl)
	responseStart(&b, "GetStreamingEvents")
	msgStart(&b, "GetStreamingEvents", e)
	if len(ids) > 0 {
		// m:SubscriptionId, not the t: the schema would suggest: that is what Exchange
		// sends and what the reference clients read.
		b.open("m:ErrorSubscriptionIds")
		for _, id := range ids {
			b.leaf("m:SubscriptionId", id)
		}
		b.end("m:ErrorSubscriptionIds")
	}
	b.leaf("m:ConnectionStatus", "Closed")
	msgEnd(&b, "GetStreamingEvents")
	responseEnd(&b, "GetStreamingEvents")
	envelopeEnd(&b)
	return b.Bytes()
}
