// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// knobs are the programmed faults. Guarded by Server.mu.
type knobs struct {
	failNext    int
	failStatus  int
	busyUntil   time.Time
	busyBackoff time.Duration
	stallUntil  time.Time
}

// FailNext makes the next n requests (any path, before authentication) fail with
// status, rendered as the component in front of EWS would: 503 as IIS's "Service
// Unavailable" page, 500 as ASP.NET's "Server Error in '/EWS' Application", 302 as
// the redirect to /ews/genericerrorpage.htm, 401 as an authentication challenge;
// other statuses with a plain text body.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.failNext, s.knobs.failStatus = n, status
}

func (s *Server) injectFailure(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	if s.knobs.failNext <= 0 {
		s.mu.Unlock()
		return false
	}
	s.knobs.failNext--
	status := s.knobs.failStatus
	s.mu.Unlock()
	s.count("injected-" + strconv.Itoa(status))
	drain(r)
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		s.unauthorized(w, r, "", "")
		return true
	case http.StatusFound:
		h.Set("Location", "/ews/genericerrorpage.htm?aspxerrorpath=/ews/exchange.asmx")
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `<html><head><title>Object moved</title></head><body><h2>Object moved to <a href="/ews/genericerrorpage.htm?aspxerrorpath=/ews/exchange.asmx">here</a>.</h2></body></html>`)
	case http.StatusServiceUnavailable:
		h.Set("Content-Type", "text/html; charset=us-ascii")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd"><HTML><HEAD><TITLE>Service Unavailable</TITLE><META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD><BODY><h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service is unavailable.</p></BODY></HTML>`)
	case http.StatusInternalServerError:
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `<!DOCTYPE html><html><head><title>Runtime Error</title></head><body bgcolor="white"><span><H1>Server Error in '/EWS' Application.<hr width=100% size=1 color=silver></H1><h2> <i>Runtime Error</i> </h2></span><b> Description: </b>An application error occurred on the server.</body></html>`)
	default:
		http.Error(w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
	}
	return true
}

// Busy makes every EWS request during window answer the ErrorServerBusy SOAP fault
// (HTTP 500) with BackOffMilliseconds = backoff, as Exchange throttling does.
func (s *Server) Busy(window, backoff time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.busyUntil, s.knobs.busyBackoff = time.Now().Add(window), backoff
}

func (s *Server) busyFault() *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !time.Now().Before(s.knobs.busyUntil) {
		return nil
	}
	return &fault{
		code:   "ErrorServerBusy",
		text:   "The server cannot service this request right now. Try again later.",
		values: [][2]string{{"BackOffMilliseconds", strconv.FormatInt(s.knobs.busyBackoff.Milliseconds(), 10)}},
	}
}

// Stall makes every stream send nothing, heartbeats included, for d (events queue
// up meanwhile), like a hung mailbox server behind a live connection.
func (s *Server) Stall(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.stallUntil = time.Now().Add(d)
	for st := range s.streams {
		st.wake()
	}
}

// DropStreams makes every open stream write the first half of an envelope and then
// cut its TCP connection (a FIN in the middle of a chunk). Events that envelope
// carried are lost, as they would be on a real connection failure: clients must
// resync after reconnecting.
func (s *Server) DropStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.streams {
		st.drop = true
		st.wake()
	}
}

// Restart simulates an EWS application pool recycle: every subscription is
// forgotten and every stream connection is cut. Mailboxes, items and sync states
// survive.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.streams {
		st.cut = true
		// Cut now rather than when the goroutine wakes: a recycle does not wait for
		// the stream to be between envelopes.
		st.conn.cut()
		st.wake()
	}
	for _, sub := range s.subs {
		s.removeSub(sub)
	}
}

// ExpireSubscriptions drops every subscription of a mailbox; streams serving them
// report ErrorSubscriptionNotFound for them (with ConnectionStatus Closed), and later
// requests naming them get the same error.
func (s *Server) ExpireSubscriptions(smtp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return fmt.Errorf("ewsfake: ExpireSubscriptions %s: %w", smtp, ErrNoMailbox)
	}
	for sub := range mb.subs {
		if st := sub.stream; st != nil {
			st.lost = append(st.lost, sub.id)
		}
		s.removeSub(sub)
	}
	return nil
}

// DisableEWS turns EWS off for a mailbox, like Set-CASMailbox -EwsEnabled $false:
// requests authenticated as, or impersonating, the mailbox get HTTP 403 with an HTML
// body (no SOAP), which is what Exchange answers; open streams are not affected.
// Autodiscover keeps working.
func (s *Server) DisableEWS(smtp string) error { return s.setEWS(smtp, true) }

// EnableEWS undoes DisableEWS.
func (s *Server) EnableEWS(smtp string) error { return s.setEWS(smtp, false) }

func (s *Server) setEWS(smtp string, disabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return fmt.Errorf("ewsfake: DisableEWS %s: %w", smtp, ErrNoMailbox)
	}
	mb.ewsDisabled = disabled
	return nil
}

// AddToken registers an OAuth access token for a mailbox (by SMTP address) or for
// the service account (by its login), valid until expiry. Used with AuthBearer; an
// app-only token for the service account must impersonate, as in Exchange Online.
func (s *Server) AddToken(tok, who string, expiry time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.logins[strings.ToLower(who)]
	if a == nil {
		return fmt.Errorf("ewsfake: AddToken for %s: %w", who, ErrNoMailbox)
	}
	s.tokens[tok] = token{acct: a, expiry: expiry}
	return nil
}
