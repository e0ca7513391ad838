// SPDX-License-Identifier: Apache-2.0

// Package httpapi is the REST transport of the Creatio-compatible API: routing
// (at / and under an optional ingress prefix, case-insensitive like the .NET
// original), decoding, the single error-to-status mapping, and middleware
// (panic recovery, body limit, access log, metrics). What the endpoints do is
// behind the Service interface.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// Service is what the API needs from the rest of the application.
type Service interface {
	// Subscribe registers and starts (or restarts, or updates) subscriptions.
	// All mailboxes are valid when it is called.
	Subscribe(ctx context.Context, mbs []*mail.Mailbox, mode mail.Mode) error
	// Close stops and forgets subscriptions; unknown ids are fine.
	Close(ctx context.Context, ids []mail.MailboxID) error
	// States reports each id's subscription state.
	States(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]creatio.SubscriptionState, error)
	// Status is the body of /status and /exists.
	Status(ctx context.Context) creatio.ServiceStatus
}

// ErrUnsupported marks a request for a feature this build does not have; it
// maps to 501.
var ErrUnsupported = errors.New("not supported by this version of the service")

// Cluster is optional: the cluster view and readiness of a clustered node.
type Cluster interface {
	// Nodes lists the live nodes with what they hold.
	Nodes(ctx context.Context) (any, error)
	// Ready fails while the node cannot reach the shared state.
	Ready(ctx context.Context) error
}

// ErrUnavailable marks a temporary refusal (shutting down); it maps to 503.
var ErrUnavailable = errors.New("service unavailable")

// Options configures the handler.
type Options struct {
	Service    Service
	Mailbox    MailboxService // nil: the mailbox-level endpoints answer 501
	Cluster    Cluster        // nil: single node
	PathPrefix string         // optional extra mount point, e.g. /exchangelistener
	// MaxRequestBytes bounds the body of every route but send and the id
	// lists (default DefaultMaxRequestBytes).
	MaxRequestBytes int64
	// MaxSendBytes bounds the body of send, attachments included (default
	// DefaultMaxSendBytes).
	MaxSendBytes int64
	// BodyTimeout is how long a client may take to send a request body
	// (default DefaultBodyTimeout); send gets sendTimeoutFactor times it.
	BodyTimeout time.Duration
	// SendBudget, when set, is taken for the size of each send body while it
	// is decoded and sent (the node's message memory budget).
	SendBudget Budget
	// AllowedHosts, when not empty, are the only Host header values (without
	// port, case-insensitive) the API answers; the health paths answer any.
	AllowedHosts []string
	// MaxConnections caps open API connections (default
	// DefaultMaxConnections); reservedConnections more are kept for the health
	// paths. See Listener.
	MaxConnections int
	Metrics        http.Handler // served at /metrics when set
	// Webhooks are endpoints that mail services call (path → handler; Graph
	// change notifications): POST with any content type, the body bounded
	// by MaxRequestBytes, paths matched case-insensitively like the rest.
	Webhooks map[string]http.Handler
	// Pprof serves Go's profiles at /debug/pprof/ (EL_PPROF): internals,
	// off by default.
	Pprof bool
	// UI, when set, is the dashboard, served under /ui/ (its paths are
	// given to it without the /ui prefix).
	UI http.Handler
	// V1, when set, is the native API (package nativeapi), served under
	// /v1/ with the guards and body limit of the credentials routes (a JSON
	// content type on POST); it authenticates its callers itself and is
	// given the lower-cased path without the prefix.
	V1 http.Handler
	// AdminToken, when set, is required (Bearer header, or the dashboard's
	// cookie) by the dashboard, /api/cluster and /debug/pprof/.
	AdminToken string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Panics     *obs.Panics
}

// Budget is a node-wide allowance of bytes (the message memory budget).
type Budget interface {
	Acquire(ctx context.Context, n int64) (release func(), err error)
}

// Defaults for Options.
const (
	DefaultMaxRequestBytes = 1 << 20
	DefaultMaxSendBytes    = 48 << 20
	DefaultBodyTimeout     = 30 * time.Second
	DefaultMaxConnections  = 1024
)

// API is the HTTP handler.
type API struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	health   *http.ServeMux // the health paths alone, for a separate listener
	cop      *http.CrossOriginProtection
	hosts    map[string]bool
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec
	conns    prometheus.Gauge
}

// New builds the handler; it does no I/O.
func New(opts Options) (*API, error) {
	if opts.Service == nil {
		return nil, errors.New("httpapi: Options.Service is required")
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxSendBytes <= 0 {
		opts.MaxSendBytes = DefaultMaxSendBytes
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	opts.PathPrefix = strings.TrimRight(strings.ToLower(opts.PathPrefix), "/")
	f := promauto.With(opts.Registerer)
	a := &API{
		opts:   opts,
		log:    opts.Logger,
		mux:    http.NewServeMux(),
		health: http.NewServeMux(),
		cop:    http.NewCrossOriginProtection(),
		hosts:  hostSet(opts.AllowedHosts),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_http_requests_total",
			Help: "API requests, by route and status code.",
		}, []string{"route", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "emaillistener_http_request_duration_seconds",
			Help:    "API request duration, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_http_refused_total",
			Help: "API requests and connections refused before reaching their handler, by reason.",
		}, []string{"reason"}),
		conns: f.NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_http_connections",
			Help: "Open API connections.",
		}),
	}
	for _, r := range refusalReasons {
		a.refused.WithLabelValues(r)
	}
	a.routes()
	return a, nil
}

func (a *API) routes() {
	a.handle("GET /api/listeners/status", health, a.status)
	a.handle("GET /api/listeners/exists", health, a.status)
	a.handle("POST /api/listeners/create", small, a.register(mail.ModeCreate))
	a.handle("POST /api/listeners/recreate", small, a.register(mail.ModeRecreate))
	a.handle("POST /api/listeners/update", small, a.register(mail.ModeUpdate))
	a.handle("POST /api/listeners/close", idList, a.close)
	a.handle("POST /api/listeners/subscriptionsstate", idList, a.states)
	a.mailboxRoutes()
	a.handle("GET /api/cluster", plain, a.admin(a.clusterView))
	if a.opts.UI != nil {
		a.handle("GET /ui", plain, func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Location", "ui/") // relative: keeps the prefix
			w.WriteHeader(http.StatusMovedPermanently)
			return nil
		})
		a.handle("GET /ui/", plain, a.ui)
	}
	a.handle("GET /readyz", health, a.ready)
	if a.opts.V1 != nil {
		v1 := func(w http.ResponseWriter, r *http.Request) error {
			a.opts.V1.ServeHTTP(w, r)
			return nil
		}
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
			a.handle(m+" /v1/", small, v1)
		}
		a.handle("POST /v1/accounts/{id}/send", nativeSend, v1)
	}
	for path, h := range a.opts.Webhooks {
		a.handle("POST "+strings.ToLower(path), webhook, func(w http.ResponseWriter, r *http.Request) error {
			h.ServeHTTP(w, r)
			return nil
		})
	}
	if a.opts.Metrics != nil {
		a.mux.Handle("GET /metrics", a.guard(health, a.opts.Metrics))
		a.health.Handle("GET /metrics", a.opts.Metrics)
	}
	if a.opts.Pprof {
		a.mux.Handle("/debug/pprof/", a.guard(plain, a.requireAdmin(pprofHandler())))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers h for pattern with the limits of class, logging, metrics,
// panic recovery and error mapping.
func (a *API) handle(pattern string, class routeClass, h handlerFunc) {
	route := pattern[strings.IndexByte(pattern, ' ')+1:]
	a.requests.WithLabelValues(route, "200")
	wrapped := a.guard(class, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		panicked := false
		func() {
			defer a.opts.Panics.Recover(a.log, "httpapi", &panicked)
			release, err := a.admitBody(rw, r, class)
			if err == nil {
				defer release()
				err = h(rw, r)
			}
			if err != nil {
				a.fail(rw, r, err)
			}
		}()
		if panicked && !rw.wrote {
			writeError(rw, http.StatusInternalServerError, "internal error")
		}
		a.requests.WithLabelValues(route, itoa(rw.code)).Inc()
		a.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		a.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rw.code, "duration", time.Since(start))
	}))
	a.mux.Handle(pattern, wrapped)
	if class == health {
		a.health.Handle(pattern, wrapped)
	}
}

// ServeHTTP strips the optional prefix and lower-cases the path (the original
// ASP.NET service routes case-insensitively) before routing.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.route(a.mux, w, r) }

func (a *API) route(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	orig := r.URL.Path
	p := strings.ToLower(orig)
	if a.opts.PathPrefix != "" && (p == a.opts.PathPrefix || strings.HasPrefix(p, a.opts.PathPrefix+"/")) {
		p, orig = p[len(a.opts.PathPrefix):], orig[len(a.opts.PathPrefix):]
	}
	if strings.HasPrefix(p, "/v1/") {
		p = p[:4] + orig[4:] // the native API is case-sensitive (message ids), as REST APIs are
	}
	if p != r.URL.Path {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = p, ""
		r = r2
	}
	mux.ServeHTTP(w, r)
}

// fail is the one place that maps errors to HTTP statuses.
func (a *API) fail(w *statusWriter, r *http.Request, err error) {
	var (
		re  *creatio.RequestError
		mbe *http.MaxBytesError
		me  *mail.Error
		ue  UserError
	)
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &mbe), errors.Is(err, creatio.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, errBodyTimeout):
		code = http.StatusRequestTimeout
	case errors.As(err, &re):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnsupported):
		code = http.StatusNotImplemented
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrUnauthorized):
		code = http.StatusUnauthorized
		a.refused.WithLabelValues("unauthorized").Inc()
	case errors.As(err, &me):
		// The mail server failed the request: not our fault, not the caller's.
		switch me.Class {
		case mail.ClassConfig:
			code = http.StatusBadRequest
		case mail.ClassTimeout:
			code = http.StatusGatewayTimeout
		case mail.ClassInternal:
		default:
			code = http.StatusBadGateway
		}
	}
	if code == http.StatusInternalServerError {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = ue.UserMessage()
	}
	if errors.As(err, &mbe) {
		msg = fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	}
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	writeError(w, code, msg)
}

type errorBody struct {
	Error string `json:"Error"`
	Code  int    `json:"Code"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: mail.Excerpt(msg, maxMessage), Code: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"Error":"internal error","Code":500}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// readBody reads the whole (limited) body; a client that does not finish
// within the route's body timeout gets errBodyTimeout (408).
func readBody(r *http.Request) ([]byte, error) {
	var b []byte
	var err error
	if n := r.ContentLength; n > 0 {
		// Read into a buffer of the declared size (admitBody bounded it):
		// io.ReadAll's doubling would hold up to twice a large send body.
		b = make([]byte, n)
		_, err = io.ReadFull(r.Body, b)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("request body shorter than its Content-Length: %w", err)
		}
	} else {
		b, err = io.ReadAll(r.Body)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, fmt.Errorf("%w: %v", errBodyTimeout, err)
	}
	return b, err
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
		// A client that does not read its answer must not hold the handler
		// goroutine for ever.
		_ = http.NewResponseController(s.ResponseWriter).SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func itoa(n int) string {
	const digits = "0123456789"
	if n >= 100 && n < 1000 {
		return string([]byte{digits[n/100], digits[n/10%10], digits[n%10]})
	}
	return "other"
}

// pprofHandler serves net/http/pprof.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func (a *API) clusterView(w http.ResponseWriter, r *http.Request) error {
	if a.opts.Cluster == nil {
		writeJSON(w, http.StatusOK, map[string]any{"Mode": "single", "Nodes": []any{}})
		return nil
	}
	nodes, err := a.opts.Cluster.Nodes(r.Context())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"Mode": "cluster", "Nodes": nodes})
	return nil
}

// ready is the Kubernetes readiness probe: 503 while a clustered node cannot
// reach Redis (it keeps serving the subscriptions it holds meanwhile).
func (a *API) ready(w http.ResponseWriter, r *http.Request) error {
	if a.opts.Cluster != nil {
		if err := a.opts.Cluster.Ready(r.Context()); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"Ready": true})
	return nil
}
