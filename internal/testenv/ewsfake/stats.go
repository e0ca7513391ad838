// SPDX-License-Identifier: Apache-2.0

package ewsfake

import "maps"

// Stats is a snapshot of the server's load, for tests and benchmarks.
type Stats struct {
	OpenStreams    int            // GetStreamingEvents connections open now
	MaxOpenStreams int            // the most open at once since Start
	Subscriptions  int            // live subscriptions
	Requests       map[string]int // per EWS operation, plus "autodiscover.xml", "autodiscover.svc", "unauthorized", "forbidden", "ErrorServerBusy", "injected-<status>"
	StreamsByLogin map[string]int // open streams per budget account (the impersonated mailbox when impersonating)
}

// counters are the running totals behind Stats. Guarded by Server.mu.
type counters struct {
	requests  map[string]int
	streamsBy map[string]int
	maxOpen   int
}

func newCounters() counters {
	return counters{requests: map[string]int{}, streamsBy: map[string]int{}}
}

func (c *counters) streamOpened(budget string, open int) {
	c.streamsBy[budget]++
	c.maxOpen = max(c.maxOpen, open)
}

func (c *counters) streamClosed(budget string) {
	if c.streamsBy[budget]--; c.streamsBy[budget] <= 0 {
		delete(c.streamsBy, budget)
	}
}

func (s *Server) count(what string) {
	s.mu.Lock()
	s.stats.requests[what]++
	s.mu.Unlock()
}

// Stats returns a snapshot.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		OpenStreams:    len(s.streams),
		MaxOpenStreams: s.stats.maxOpen,
		Subscriptions:  len(s.subs),
		Requests:       maps.Clone(s.stats.requests),
		StreamsByLogin: maps.Clone(s.stats.streamsBy),
	}
}
