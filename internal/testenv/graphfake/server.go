// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv/loopcert"
)

// APIVersion is the version segment of URL: the fake serves v1.0 only.
const APIVersion = "v1.0"

// Server is a fake Microsoft Graph (mail, subscriptions, JSON batching) and
// Microsoft Entra ID token endpoint on 127.0.0.1. All methods are safe for
// concurrent use.
//
// State lives under one mutex: mailboxes, subscriptions, notification queues,
// fault knobs and counters. Handlers hold it only to read or change that state,
// never while talking to the network (a validation request or a notification POST
// runs with the mutex released).
type Server struct {
	opts    Options
	ln      net.Listener
	hs      *http.Server
	baseURL string // scheme://127.0.0.1:port
	certPEM []byte
	ids     codec
	// spID is the object id of the application's service principal, the
	// creatorId of subscriptions made with app-only tokens.
	spID string
	// ctx is cancelled by Close; outgoing requests (validation, notifications) and
	// stalls hang on it so that Close never waits for a slow receiver.
	ctx      context.Context
	cancel   context.CancelFunc
	inflight sync.WaitGroup // running handlers
	workers  sync.WaitGroup // notification POSTs

	mu        sync.Mutex
	closed    bool
	mailboxes []*mailbox          // by number - 1
	byName    map[string]*mailbox // lower-case UPN and lower-case user id
	subs      map[string]*subscription
	subSeq    uint64
	endpoints map[string]*endpoint // notification queues by URL
	timers    map[*time.Timer]struct{}
	knobs     knobs
	stats     counters
}

// Start listens on a random loopback port and serves until Close.
func Start(o Options) (*Server, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("graphfake: listen: %w", err)
	}
	s := &Server{
		opts:      o,
		ids:       newCodec(),
		spID:      newGUID(),
		byName:    make(map[string]*mailbox),
		subs:      make(map[string]*subscription),
		endpoints: make(map[string]*endpoint),
		timers:    make(map[*time.Timer]struct{}),
		stats:     newCounters(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	scheme := "http"
	if o.TLS {
		cert, certPEM, err := loopcert.New("graphfake")
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.certPEM = certPEM
		// HTTP/1.1 only: what matters here is the API, not the framing, and one
		// protocol keeps connection accounting simple. The curve list leaves out the
		// post-quantum hybrid Go prefers: the fake's clients are tests, and an ML-KEM
		// computation per handshake costs them time for nothing.
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert},
			NextProtos:       []string{"http/1.1"},
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}})
		scheme = "https"
	}
	s.ln = ln
	s.baseURL = scheme + "://" + ln.Addr().String()
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	s.logf("graphfake: serving %s (tenant %s, client %s)", s.URL(), o.Tenant, o.ClientID)
	return s, nil
}

// NewT starts a Server that is closed in t.Cleanup and logs through t.Logf.
func NewT(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	s, err := Start(o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server at once: the listener and connections are closed,
// pending notifications are dropped, and outgoing requests are cancelled. It
// returns when no handler or notification worker runs any more. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
	s.mu.Unlock()
	s.cancel()
	_ = s.hs.Close()
	s.inflight.Wait()
	s.workers.Wait()
}

// URL is the Graph root including the version, e.g. http://127.0.0.1:PORT/v1.0.
func (s *Server) URL() string { return s.baseURL + "/" + APIVersion }

// LoginURL is the Entra ID authority host, e.g. http://127.0.0.1:PORT; the token
// endpoint is LoginURL()+"/"+Tenant()+"/oauth2/v2.0/token" (the tenant domain
// works in place of the tenant id).
func (s *Server) LoginURL() string { return s.baseURL }

// TokenURL is the client-credentials token endpoint of the tenant.
func (s *Server) TokenURL() string { return s.baseURL + "/" + s.opts.Tenant + "/oauth2/v2.0/token" }

// CertPEM is the self-signed CA certificate of a TLS server (nil without TLS).
func (s *Server) CertPEM() []byte { return s.certPEM }

// Tenant is the directory (tenant) id.
func (s *Server) Tenant() string { return s.opts.Tenant }

// TenantDomain is the tenant's domain.
func (s *Server) TenantDomain() string { return s.opts.TenantDomain }

// ClientID is the application (client) id of the registered application.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret is the application's client secret.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

func (s *Server) logf(format string, args ...any) {
	if l := s.opts.Logf; l != nil {
		l(format, args...)
	}
}

// ServeHTTP routes the version root to the API and /{tenant}/oauth2/v2.0/token to
// the token endpoint; both hosts of the real service share one listener here.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	// Added under the lock that Close takes to set closed, so no Add races with
	// Close's Wait.
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	p := r.URL.EscapedPath()
	switch {
	case strings.EqualFold(p, "/"+APIVersion) || hasPrefixFold(p, "/"+APIVersion+"/"):
		s.serveHTTPAPI(w, r)
	case isTokenPath(p):
		s.serveToken(w, r)
	default:
		// Graph answers unknown versions with a JSON error, but no client of the
		// fake should ever get here; a plain 404 makes the mistake obvious.
		s.logf("graphfake: %s %s: no such endpoint", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// errClosed is returned by setup methods called after Close.
var errClosed = errors.New("graphfake: server closed")

// ErrNoMailbox is returned by setup methods naming a mailbox that does not exist.
var ErrNoMailbox = errors.New("graphfake: no such mailbox")

// ErrNotFound is returned by setup methods naming a folder or message that does
// not exist.
var ErrNotFound = errors.New("graphfake: not found")
