// Package app wires the service together and owns its lifecycle: New builds
// every component without I/O, Start listens and starts the subscriptions,
// Stop drains them in reverse order within a deadline.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/budget"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/delivery"
	"github.com/emaillistener/emaillistener/internal/history"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/lockout"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/mime"
	"github.com/emaillistener/emaillistener/internal/netguard"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/source/imapsrc"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/syncer"
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

// App is one running service instance.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	panics   *obs.Panics
	store    stateStore
	cluster  *clusterParts // nil with the memory store
	coord    *coordinator  // nil with the memory store
	syncer   *syncer.Manager
	history  *history.Loader
	service  *service
	api      *httpapi.API
	server   *http.Server
	listener net.Listener
	health   *http.Server // nil unless EL_HEALTH_LISTEN_ADDR
	healthLn net.Listener

	stopCoord context.CancelFunc
	stopOnce  sync.Once
	stopErr   error
	served    chan error
}

// New builds the application; it performs no I/O besides reading the
// configured CA file.
func New(cfg config.Config, log *slog.Logger, version string, opts *Options) (*App, error) {
	if opts == nil {
		opts = &Options{}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	panics := obs.NewPanics(reg)

	tlsCfg := opts.IMAPTLS
	if tlsCfg == nil {
		var err error
		if tlsCfg, err = imapTLS(cfg); err != nil {
			return nil, err
		}
	}
	var err error
	imapOpts := &imapsrc.Options{
		DialTimeout:     cfg.IMAPDialTimeout,
		CommandTimeout:  cfg.IMAPCommandTimeout,
		TLSConfig:       tlsCfg,
		MaxMessageBytes: cfg.MaxMessageBytes,
		Logger:          log,
	}
	callbackNets, err := netguard.Parse("EL_CALLBACK_NETWORKS", cfg.CallbackNetworks)
	if err != nil {
		return nil, err
	}
	mailNets, err := netguard.Parse("EL_MAIL_NETWORKS", cfg.MailNetworks)
	if err != nil {
		return nil, err
	}
	imapOpts.Control = mailNets.Control()
	dbackoff := opts.DeliveryBackoff
	if dbackoff == (backoff.Policy{}) {
		dbackoff = backoff.Policy{Min: time.Second, Max: cfg.DeliveryMaxBackoff}
	}
	post := delivery.New(&delivery.Options{
		PerHost:        cfg.DeliveryPerHost,
		AttemptTimeout: cfg.DeliveryTimeout,
		Backoff:        dbackoff,
		Control:        callbackNets.Control(),
		Logger:         log,
		Registerer:     reg,
	})
	mimeOpts := &mime.Options{MaxAttachmentBytes: cfg.MaxAttachmentBytes}
	reconnect := opts.Reconnect
	if reconnect == (backoff.Policy{}) {
		reconnect = backoff.Policy{Min: time.Second, Max: cfg.ReconnectMaxDelay}
	}
	var (
		st    stateStore = store.NewMemory()
		parts *clusterParts
	)
	if cfg.UsesRedis() {
		if parts, err = newClusterParts(cfg, log, reg, panics); err != nil {
			return nil, err
		}
		st = parts.store
	}
	sink := &creatioSink{post: post}
	held := lockout.New(lockout.Options{Min: cfg.AuthRetryMin, Max: cfg.AuthRetryMax, Registerer: reg})
	inflight := budget.New(cfg.MaxInflightBytes, reg)
	sopts := syncer.Options{
		Dialer: syncer.DialerFunc(func(ctx context.Context, mb *mail.Mailbox, onExists func()) (syncer.Session, error) {
			return imapsrc.Dial(ctx, mb, imapOpts, onExists)
		}),
		Sink:             sink,
		Cursors:          st,
		Parser:           func(raw []byte) (*mail.Message, error) { return mime.Parse(raw, mimeOpts) },
		WatchByDefault:   imapsrc.WatchByDefault,
		IdleMax:          cfg.IMAPIdleMax,
		FolderPoll:       cfg.IMAPFolderPoll,
		Reconnect:        reconnect,
		DialConcurrency:  cfg.IMAPDialConcurrency,
		DialRate:         cfg.IMAPDialRate,
		Budget:           inflight,
		MaxMessageBytes:  cfg.MaxMessageBytes,
		TokenRefreshWait: cfg.TokenRefreshWait,
		Lockout:          held,
		Logger:           log,
		Registerer:       reg,
		Panics:           panics,
	}
	if parts != nil {
		sopts.Leaser = leaser{parts.leases}
		sopts.OnStatus = publishStatus(parts.store, cfg.NodeID, log)
	}
	mgr, err := syncer.New(sopts)
	if err != nil {
		return nil, err
	}
	loader, err := history.New(history.Options{
		Dial: func(ctx context.Context, mb *mail.Mailbox) (history.Session, error) {
			return imapsrc.Dial(ctx, mb, imapOpts, nil)
		},
		Deliver:        sink.deliverWithin(historyPatience),
		Parse:          func(raw []byte) (*mail.Message, error) { return mime.Parse(raw, mimeOpts) },
		WatchByDefault: imapsrc.WatchByDefault,
		Concurrency:    cfg.HistoryConcurrency,
		Budget:         inflight,
		Lockout:        held,
		Logger:         log,
		Registerer:     reg,
		Panics:         panics,
	})
	if err != nil {
		return nil, err
	}
	svc := &service{registry: st, syncer: mgr, history: loader, version: version, started: time.Now(), storeName: "memory", max: cfg.MaxSubscriptions, log: log,
		refused: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_subscriptions_refused_total",
			Help: "Registrations refused because the node serves EL_MAX_SUBSCRIPTIONS mailboxes.",
		})}
	var coord *coordinator
	if parts != nil {
		coord = &coordinator{self: cfg.NodeID, reg: parts.store, members: parts.members, syncer: mgr, log: log.With("node", cfg.NodeID),
			panics: panics, kick: make(chan struct{}, 1), done: make(chan struct{}), rdb: parts.rdb, prefix: cfg.RedisPrefix,
			unplaced: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
				Name: "emaillistener_cluster_unplaced_mailboxes",
				Help: "Registered mailboxes no node serves because every node is at EL_MAX_SUBSCRIPTIONS.",
			})}
		svc.coord, svc.statuses, svc.holders, svc.members, svc.storeName, svc.node = coord, parts.store, parts.leases, parts.members, "redis", cfg.NodeID
	}
	smtpTLS := opts.SMTPTLS
	if smtpTLS == nil {
		smtpTLS = tlsCfg
	}
	ops := &mailboxOps{
		imap:            imapOpts,
		validateTimeout: cfg.ValidateTimeout,
		pingClient:      newPingClient(callbackNets),
		restricted:      callbackNets != nil,
		probes:          make(chan struct{}, cfg.ProbeConcurrency),
		history:         historyAdapter{loader},
		sender:          newSMTPSender(smtpTLS, cfg.IMAPDialTimeout, imapOpts, cfg.AppendSent, st, log),
	}
	var capi httpapi.Cluster
	if parts != nil {
		capi = clusterAPI{parts}
	}
	api, err := httpapi.New(httpapi.Options{
		Service:         svc,
		Mailbox:         ops,
		Cluster:         capi,
		PathPrefix:      cfg.PathPrefix,
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxSendBytes:    cfg.MaxSendBytes,
		BodyTimeout:     cfg.BodyTimeout,
		SendBudget:      inflight,
		AllowedHosts:    splitList(cfg.AllowedHosts),
		MaxConnections:  cfg.MaxConnections,
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Pprof:           pprofHandler(cfg.Pprof),
		Logger:          log,
		Registerer:      reg,
		Panics:          panics,
	})
	if err != nil {
		return nil, err
	}
	return &App{
		cfg: cfg, log: log, reg: reg, panics: panics, store: st, cluster: parts, coord: coord, syncer: mgr, history: loader, service: svc, api: api,
		server: api.Server(),
		served: make(chan error, 1),
	}, nil
}

func imapTLS(cfg config.Config) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.IMAPTLSInsecure} //nolint:gosec // opt-in, documented as unsafe
	if cfg.IMAPTLSCAFile != "" {
		pem, err := os.ReadFile(cfg.IMAPTLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("EL_IMAP_TLS_CA_FILE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("EL_IMAP_TLS_CA_FILE %s: no PEM certificates found", cfg.IMAPTLSCAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// Start listens on the configured address and starts subscriptions.
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
		go func() {
			defer a.panics.Recover(a.log, "http", nil)
			if err := a.health.Serve(a.healthLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("health listener stopped", "err", err)
			}
		}()
	}
	base := context.WithoutCancel(ctx)
	a.syncer.Start(base)
	a.history.Begin(base)
	n := 0
	if a.cluster != nil {
		if err := a.cluster.store.Ping(ctx); err != nil {
			a.log.Warn("Redis unreachable at start; retrying in the background", "err", err)
		}
		if err := a.cluster.leases.Start(base); err != nil {
			ln.Close()
			return fmt.Errorf("lease manager: %w", err)
		}
		if err := a.cluster.members.Start(base); err != nil {
			ln.Close()
			return fmt.Errorf("cluster membership: %w", err)
		}
		cctx, cancel := context.WithCancel(base)
		a.stopCoord = cancel
		go a.coord.run(cctx)
	} else {
		var err error
		if n, err = a.service.restore(ctx); err != nil {
			ln.Close()
			return fmt.Errorf("restore subscriptions: %w", err)
		}
	}
	go func() {
		defer a.panics.Recover(a.log, "http", nil)
		a.served <- a.server.Serve(a.listener)
	}()
	attrs := []any{"addr", ln.Addr().String(), "store", a.service.storeName, "node", a.cfg.NodeID, "restored", n}
	if a.healthLn != nil {
		attrs = append(attrs, "health_addr", a.healthLn.Addr().String())
	}
	a.log.Info("emaillistener started", attrs...)
	return nil
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

// Stop shuts down: first the API stops taking requests, then the subscriptions
// log out; it is idempotent and bounded by ctx.
func (a *App) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() {
		var errs []error
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if a.health != nil {
			// Probes keep answering until the API is down; the health
			// listener goes last of the HTTP parts.
			_ = a.health.Close()
		}
		if a.cluster != nil {
			// Hand-over: tell the others we are leaving (placement skips us),
			// stop deciding, then the workers release their leases as they exit.
			if err := a.cluster.members.Leave(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cluster leave: %w", err))
			}
			a.stopCoord()
			<-a.coord.done
		}
		if err := a.history.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := a.syncer.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
		if a.cluster != nil {
			if err := a.cluster.leases.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("leases: %w", err))
			}
			if err := a.cluster.members.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cluster membership: %w", err))
			}
			_ = a.cluster.rdb.Close()
		}
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

// stateStore is what the app needs from a store (memory or Redis).
type stateStore interface {
	Registry
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error)
	PutCursor(ctx context.Context, id mail.MailboxID, folder string, c mail.Cursor) error
}

// Cursor returns a folder's sync cursor (for tests and diagnostics).
func (a *App) Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error) {
	return a.store.Cursor(ctx, id, folder)
}

// splitList splits a comma-separated setting.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// pprofHandler serves net/http/pprof when on (EL_PPROF), else nil.
func pprofHandler(on bool) http.Handler {
	if !on {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
