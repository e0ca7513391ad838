// SPDX-License-Identifier: Apache-2.0

// Package app wires the service together and owns its lifecycle: New builds
// every component without I/O, Start starts them in order and listens, Stop
// stops them in reverse order within a deadline (a failed Start stops what it
// had started). It holds no behaviour of its own.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// Options are programmatic overrides, mainly for tests. Nil is fine.
type Options struct {
	// IMAPTLS replaces the TLS configuration built from the config (tests pass
	// the private Dovecot's CA here).
	IMAPTLS *tls.Config
	// SMTPTLS replaces the TLS configuration for outgoing SMTP (tests pass the
	// private Postfix's certificate). Nil: the IMAP TLS configuration.
	SMTPTLS *tls.Config
	// Reconnect overrides the reconnect backoff (tests use short delays).
	Reconnect backoff.Policy
	// DeliveryBackoff overrides the delivery retry backoff.
	DeliveryBackoff backoff.Policy
}

// component is one part with a lifecycle; either function may be nil.
type component struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// App is one running service instance.
type App struct {
	cfg    config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	panics *obs.Panics
	cursor func(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error)
	api    *httpapi.API
	store  string // "memory" or "redis", for the start line

	parts    []component // in start order
	started  int         // how many of parts started
	server   *http.Server
	listener net.Listener
	health   *http.Server // nil unless EL_HEALTH_LISTEN_ADDR
	healthLn net.Listener

	stopOnce sync.Once
	stopErr  error
	served   chan error
}

// New builds the application; it performs no I/O besides reading the
// configured CA and key files.
func New(cfg config.Config, log *slog.Logger, version string, opts *Options) (*App, error) {
	if opts == nil {
		opts = &Options{}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &App{cfg: cfg, log: log, reg: reg, panics: obs.NewPanics(reg), served: make(chan error, 1)}
	w, err := a.wire(version, opts)
	if err != nil {
		return nil, err
	}
	a.api, err = httpapi.New(httpapi.Options{
		Service:         w.service,
		Mailbox:         w.service,
		Cluster:         w.clusterAPI,
		PathPrefix:      cfg.PathPrefix,
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxSendBytes:    cfg.MaxSendBytes,
		BodyTimeout:     cfg.BodyTimeout,
		SendBudget:      w.inflight,
		AllowedHosts:    cfg.AllowedHostList(),
		MaxConnections:  cfg.MaxConnections,
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Webhooks:        w.webhooks,
		Pprof:           cfg.Pprof,
		UI:              w.ui,
		V1:              w.native,
		AdminToken:      cfg.AdminToken.Reveal(),
		Logger:          log,
		Registerer:      reg,
		Panics:          a.panics,
	})
	if err != nil {
		return nil, err
	}
	a.server = a.api.Server()
	return a, nil
}

// Start listens on the configured addresses and starts every component in
// order; if one fails, those started are stopped again.
func (a *App) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.ListenAddr, err)
	}
	a.listener = a.api.Listener(ln)
	if a.cfg.HealthAddr != "" {
		hln, err := net.Listen("tcp", a.cfg.HealthAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s (EL_HEALTH_LISTEN_ADDR): %w", a.cfg.HealthAddr, err)
		}
		a.health, a.healthLn = a.api.HealthServer(), a.api.HealthListener(hln)
	}
	if err := a.startParts(context.WithoutCancel(ctx)); err != nil {
		a.closeListeners()
		return err
	}
	a.serve()
	attrs := []any{"addr", ln.Addr().String(), "store", a.store, "node", a.cfg.NodeID}
	if a.healthLn != nil {
		attrs = append(attrs, "health_addr", a.healthLn.Addr().String())
	}
	a.log.Info("emaillistener started", attrs...)
	return nil
}

func (a *App) serve() {
	go func() {
		defer a.panics.Recover(a.log, "http", nil)
		a.served <- a.server.Serve(a.listener)
	}()
	if a.health != nil {
		go func() {
			defer a.panics.Recover(a.log, "http", nil)
			if err := a.health.Serve(a.healthLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("health listener stopped", "err", err)
			}
		}()
	}
}

func (a *App) closeListeners() {
	a.listener.Close()
	if a.healthLn != nil {
		a.healthLn.Close()
	}
}

// startParts starts the components in order; when one fails, those started
// are stopped again (within the shutdown timeout).
func (a *App) startParts(ctx context.Context) error {
	for _, p := range a.parts {
		if p.start != nil {
			if err := p.start(ctx); err != nil {
				sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
				defer cancel()
				return errors.Join(fmt.Errorf("start %s: %w", p.name, err), a.stopParts(sctx))
			}
		}
		a.started++
	}
	return nil
}

// stopParts stops the started components in reverse order, going on past a
// failure.
func (a *App) stopParts(ctx context.Context) error {
	var errs []error
	for ; a.started > 0; a.started-- {
		if p := a.parts[a.started-1]; p.stop != nil {
			if err := p.stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Addr is the address the API listens on (useful with port 0).
func (a *App) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// Registry exposes the metrics registry (tests read counters from it).
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Panics returns the panic counter.
func (a *App) Panics() *obs.Panics { return a.panics }

// Cursor returns a folder's sync cursor (for tests and diagnostics).
func (a *App) Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error) {
	return a.cursor(ctx, id, folder)
}

// Stop shuts down: first the API stops taking requests (the health listener
// last), then the components stop in reverse order; it is idempotent and
// bounded by ctx.
func (a *App) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() {
		var errs []error
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if a.health != nil {
			_ = a.health.Close()
		}
		errs = append(errs, a.stopParts(ctx))
		a.stopErr = errors.Join(errs...)
		a.log.Info("emaillistener stopped", "err", a.stopErr)
	})
	return a.stopErr
}

// Run starts the app, waits for ctx (the signal context) or a server failure,
// then stops within the configured shutdown timeout.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-a.served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	stopErr := a.Stop(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return errors.Join(serveErr, stopErr)
	}
	return stopErr
}
