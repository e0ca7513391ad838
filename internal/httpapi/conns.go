// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// reservedConnections are accepted beyond Options.MaxConnections for the
// health paths only (liveness and readiness probes, Creatio's exists check):
// a flood of slow clients must not make a healthy node look dead.
const reservedConnections = 32

// Server timeouts. A request body has its own per-route deadline (guard.go).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Listener caps the connections ln hands to the server: up to MaxConnections
// are served normally, reservedConnections more only for the health paths
// (others get 503), and beyond that a connection is answered 503 and closed
// at once, so descriptors and goroutines stay bounded whatever clients do.
func (a *API) Listener(ln net.Listener) net.Listener {
	n := int64(a.opts.MaxConnections)
	return &limitListener{Listener: ln, api: a, max: n, hard: n + reservedConnections}
}

// Server returns an http.Server for the API with bounded header size and
// timeouts; pass it a listener from Listener.
func (a *API) Server() *http.Server {
	return &http.Server{
		Handler:           a,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
}

// healthConnections caps the connections of the health listener.
const healthConnections = 64

// HealthServer returns an http.Server for the health paths alone
// (/api/listeners/status and /exists, /readyz, /metrics), for a listener of
// their own (HealthListener) that a flood of API clients cannot fill.
func (a *API) HealthServer() *http.Server {
	srv := a.Server()
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.route(a.health, w, r) })
	srv.ConnContext = nil
	return srv
}

// HealthListener caps the health listener's connections at
// healthConnections; beyond that a connection is answered 503 and closed.
func (a *API) HealthListener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, api: a, max: healthConnections, hard: healthConnections}
}

type limitListener struct {
	net.Listener
	api       *API
	max, hard int64
	open      atomic.Int64
}

// fullAnswer is written to a connection beyond the hard limit before it is
// closed.
const fullAnswer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 25\r\n\r\ntoo many open connections"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.open.Add(1)
		if n > l.hard {
			l.open.Add(-1)
			l.api.refused.WithLabelValues("connections").Inc()
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write([]byte(fullAnswer))
			_ = c.Close()
			continue
		}
		l.api.conns.Inc()
		return &limitedConn{Conn: c, l: l, overflow: n > l.max}, nil
	}
}

// limitedConn is a counted connection; overflow ones serve health paths only.
type limitedConn struct {
	net.Conn
	l        *limitListener
	overflow bool
	once     sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.api.conns.Dec()
	})
	return c.Conn.Close()
}

type overflowKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok && lc.overflow {
		return context.WithValue(ctx, overflowKey{}, true)
	}
	return ctx
}

func overflowing(ctx context.Context) bool {
	v, _ := ctx.Value(overflowKey{}).(bool)
	return v
}
