// SPDX-License-Identifier: Apache-2.0

package ewsfake

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

// Paths the fake serves (matched case-insensitively, as IIS does).
const (
	PathEWS              = "/EWS/Exchange.asmx"
	PathAutodiscoverPOX  = "/autodiscover/autodiscover.xml"
	PathAutodiscoverSOAP = "/autodiscover/autodiscover.svc"
)

// Server is a fake Exchange server speaking EWS and Autodiscover over HTTP(S) on
// 127.0.0.1. All methods are safe for concurrent use.
//
// State lives under one mutex: mailboxes, subscriptions, streams and the fault
// knobs. Handlers hold it only to read or change that state, never while writing to a
// connection. Each open GetStreamingEvents stream is served by its own handler
// goroutine, which other goroutines wake through the stream's kick channel.
type Server struct {
	opts     Options
	ln       net.Listener
	hs       *http.Server
	baseURL  string
	certPEM  []byte
	ids      codec
	backends []backend
	closing  chan struct{}
	done     sync.WaitGroup // janitor
	inflight sync.WaitGroup // running handlers

	mu          sync.Mutex
	closed      bool
	mailboxes   []*mailbox          // by number - 1
	byAddr      map[string]*mailbox // lower-case SMTP address
	logins      map[string]*account // lower-case login alias
	service     *account
	tokens      map[string]token
	subs        map[string]*subscription
	subCount    map[string]int // live subscriptions per budget account
	streams     map[*stream]struct{}
	adRedirects map[string]string // lower-case address -> address or URL
	knobs       knobs
	stats       counters
}

// Start listens on a random loopback port and serves until Close.
func Start(opts Options) (*Server, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ewsfake: listen: %w", err)
	}
	s := &Server{
		opts:        opts,
		ids:         newCodec(),
		closing:     make(chan struct{}),
		byAddr:      make(map[string]*mailbox),
		logins:      make(map[string]*account),
		tokens:      make(map[string]token),
		subs:        make(map[string]*subscription),
		subCount:    make(map[string]int),
		streams:     make(map[*stream]struct{}),
		adRedirects: make(map[string]string),
		stats:       newCounters(),
	}
	s.backends = newBackends(opts.Backends)
	scheme := "http"
	if opts.TLS {
		cert, certPEM, err := loopcert.New("ewsfake")
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.certPEM = certPEM
		// HTTP/1.1 only: NTLM authenticates a connection, which HTTP/2 multiplexing
		// would break, and IIS does not negotiate h2 for Windows authentication either.
		// Windows' TLS stack (SChannel) behind IIS offers no post-quantum
		// key exchange; without this the fake's handshakes would cost Go
		// clients an ML-KEM computation real Exchange never asks for.
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"},
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}})
		scheme = "https"
	}
	s.ln = ln
	s.baseURL = scheme + "://" + ln.Addr().String()
	if opts.ServiceAccount != "" {
		s.service = &account{login: opts.ServiceAccount, password: opts.ServicePassword, service: true}
		for _, a := range loginAliases(opts.ServiceAccount, "") {
			s.logins[a] = s.service
		}
	}
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       connContext,
		ErrorLog:          nil,
	}
	go func() { _ = s.hs.Serve(ln) }()
	s.done.Add(1)
	go s.janitor()
	s.logf("ewsfake: serving %s (auth %s, %d backend(s))", s.URL(), opts.Auth, opts.Backends)
	return s, nil
}

// NewT starts a Server that is closed in t.Cleanup and logs through t.Logf.
func NewT(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server at once: listeners and connections (open streams
// included) are closed. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	_ = s.hs.Close()
	s.done.Wait()
	// Handlers (streams above all) end once their connection is gone; waiting for them
	// means nothing logs or touches state after Close returns.
	s.inflight.Wait()
}

// URL is the EWS endpoint, e.g. http://127.0.0.1:PORT/EWS/Exchange.asmx.
func (s *Server) URL() string { return s.baseURL + PathEWS }

// BaseURL is the scheme, host and port, without a path.
func (s *Server) BaseURL() string { return s.baseURL }

// CertPEM is the self-signed CA certificate of a TLS server (nil without TLS).
func (s *Server) CertPEM() []byte { return s.certPEM }

func (s *Server) logf(format string, args ...any) {
	if l := s.opts.Logf; l != nil {
		l(format, args...)
	}
}

// ServeHTTP routes by path. Failures programmed with FailNext hit first, like an IIS
// or proxy failure in front of EWS would; authentication comes next; Busy and
// DisableEWS are decided by EWS itself after authentication.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	// Added under the lock that Close takes to set closed, so no Add can race with
	// Close's Wait.
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	path := strings.ToLower(r.URL.Path)
	var ep string
	switch path {
	case strings.ToLower(PathEWS):
		ep = "ews"
	case PathAutodiscoverPOX:
		ep = "autodiscover.xml"
	case PathAutodiscoverSOAP:
		ep = "autodiscover.svc"
	default:
		http.NotFound(w, r)
		return
	}
	if s.injectFailure(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "405 - HTTP verb used to access this page is not allowed.", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxRequestBytes)
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	switch ep {
	case "ews":
		s.serveEWS(w, r, p)
	case "autodiscover.xml":
		s.servePOX(w, r, p)
	default:
		s.serveAutodiscoverSOAP(w, r, p)
	}
}

// janitor expires idle subscriptions, so that memory and Stats reflect what a real
// server would still hold even when no client touches them again.
func (s *Server) janitor() {
	defer s.done.Done()
	every := s.opts.SubscriptionIdle / 4
	every = min(max(every, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case now := <-t.C:
			s.mu.Lock()
			s.expireIdle(now)
			s.mu.Unlock()
		}
	}
}

// errClosed is returned by setup methods called after Close.
var errClosed = errors.New("ewsfake: server closed")

// ctxKey keys per-connection state in request contexts.
type ctxKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	return context.WithValue(ctx, ctxKey{}, &connState{raw: raw})
}
