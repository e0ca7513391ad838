// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"net/http"
	"strings"
	"time"
)

// knobs are the programmed faults. Guarded by Server.mu.
type knobs struct {
	throttleNext  int
	throttleAfter time.Duration
	failNext      int
	failStatus    int
	stall         time.Duration
	stallWake     chan struct{} // closed by the next Stall call
	dropNotify    bool
}

// ThrottleNext makes the next n API requests (each request of a $batch counts on
// its own; the token endpoint does not count) fail with 429 and Graph's global
// throttling body (code TooManyRequests) and Retry-After: retryAfter in whole
// seconds, rounded up; zero sends no Retry-After, which clients must survive too.
func (s *Server) ThrottleNext(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.throttleNext, s.knobs.throttleAfter = n, retryAfter
}

// FailNext makes the next n API requests (counted like ThrottleNext) fail with
// status before authentication, as the gateway in front of the service would:
// 503 ServiceUnavailable with Retry-After 1, 504 GatewayTimeout, 500
// InternalServerError, 429 like ThrottleNext; other statuses with a code made of
// the status text.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.failNext, s.knobs.failStatus = n, status
}

// Stall makes every API request, once admitted (so it holds one of its mailbox's
// concurrent slots meanwhile), wait d before it is answered; zero turns it off.
// Each call releases the requests waiting for an earlier one, so a test can hold
// requests with a long stall and let them go with Stall(0). A waiting request
// also ends when its client goes away or the server closes.
func (s *Server) Stall(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.stall = d
	if s.knobs.stallWake != nil {
		close(s.knobs.stallWake)
	}
	s.knobs.stallWake = make(chan struct{})
}

// DropNotifications makes changes produce no change notifications while on, as
// if Graph lost them; lifecycle notifications still go out.
func (s *Server) DropNotifications(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.dropNotify = on
}

// ExpireDeltaTokens invalidates every delta and skip token issued so far for the
// mailbox's folders: they get 410 Gone with a Location header holding the URL of
// a new initial round (same query options), as after a sync reset.
func (s *Server) ExpireDeltaTokens(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb := s.byName[strings.ToLower(upn)]; mb != nil {
		mb.epoch++
	}
}

// injected answers a request with a programmed fault, or returns nil.
func (s *Server) injected(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.knobs.throttleNext > 0:
		s.knobs.throttleNext--
		s.stats.throttled++
		s.logf("graphfake: %s %s: injected 429", rc.method, rc.path)
		return s.tooMany(rc, s.knobs.throttleAfter)
	case s.knobs.failNext > 0:
		s.knobs.failNext--
		st := s.knobs.failStatus
		s.logf("graphfake: %s %s: injected %d", rc.method, rc.path, st)
		switch st {
		case http.StatusTooManyRequests:
			s.stats.throttled++
			return s.tooMany(rc, time.Second)
		case http.StatusServiceUnavailable:
			return retryAfter(rc.fail(st, "ServiceUnavailable", "The service is temporarily unavailable. Retry the request after the time given in Retry-After."), time.Second)
		case http.StatusGatewayTimeout:
			return rc.fail(st, "GatewayTimeout", "The gateway did not receive a response from the service in time.")
		case http.StatusInternalServerError:
			return rc.fail(st, "InternalServerError", "An internal server error occurred.")
		case http.StatusUnauthorized:
			return rc.fail(st, "InvalidAuthenticationToken", "Access token validation failure.")
		}
		return rc.fail(st, strings.ReplaceAll(http.StatusText(st), " ", ""), http.StatusText(st)+".")
	}
	return nil
}

// tooMany is Graph's global throttling answer.
func (s *Server) tooMany(rc *reqCtx, after time.Duration) *apiResponse {
	return retryAfter(rc.fail(http.StatusTooManyRequests, "TooManyRequests", "Too many requests. Retry after the time given in Retry-After."), after)
}

// admit applies Outlook's per-app, per-mailbox budgets: requests per window
// (every request counts, throttled ones included, as Graph keeps counting while
// it throttles) and concurrent requests. It returns the release of the
// concurrency slot.
func (s *Server) admit(rc *reqCtx) (func(), *apiResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := rc.mb
	if lim := s.opts.MailboxRequestLimit; lim > 0 {
		// Throttling windows use real time even with a fake Options.Now: they are
		// about load, not about message times.
		now := time.Now()
		if now.Sub(mb.winStart) >= s.opts.RequestWindow {
			mb.winStart, mb.winCount = now, 0
		}
		mb.winCount++
		if mb.winCount > lim {
			s.stats.throttled++
			s.logf("graphfake: %s: over %d requests per %v", mb.upn, lim, s.opts.RequestWindow)
			return nil, retryAfter(rc.fail(http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its RequestRate limit."),
				max(mb.winStart.Add(s.opts.RequestWindow).Sub(now), time.Second))
		}
	}
	if lim := s.opts.MailboxConcurrency; lim > 0 && mb.inflight >= lim {
		s.stats.throttled++
		s.logf("graphfake: %s: over %d concurrent requests", mb.upn, lim)
		return nil, retryAfter(rc.fail(http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
			s.opts.ThrottleRetryAfter)
	}
	mb.inflight++
	return func() {
		s.mu.Lock()
		mb.inflight--
		s.mu.Unlock()
	}, nil
}

// stall waits out Stall; a gone client gets nothing useful, so any answer will do.
func (s *Server) stall(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	d, wake := s.knobs.stall, s.knobs.stallWake
	s.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-rc.ctx.Done():
	case <-s.ctx.Done():
	}
	return rc.fail(http.StatusServiceUnavailable, "ServiceUnavailable", "The request was abandoned.")
}
