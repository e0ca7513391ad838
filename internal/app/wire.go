// SPDX-License-Identifier: Apache-2.0

package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/budget"
	"github.com/emaillistener/emaillistener/internal/certs"
	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/delivery"
	"github.com/emaillistener/emaillistener/internal/events"
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/history"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/lockout"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/mime"
	"github.com/emaillistener/emaillistener/internal/nativeapi"
	"github.com/emaillistener/emaillistener/internal/netguard"
	"github.com/emaillistener/emaillistener/internal/oauthtoken"
	"github.com/emaillistener/emaillistener/internal/outbox"
	"github.com/emaillistener/emaillistener/internal/placement"
	"github.com/emaillistener/emaillistener/internal/sender"
	"github.com/emaillistener/emaillistener/internal/service"
	"github.com/emaillistener/emaillistener/internal/source/ewssrc"
	"github.com/emaillistener/emaillistener/internal/source/exo"
	"github.com/emaillistener/emaillistener/internal/source/graphsrc"
	"github.com/emaillistener/emaillistener/internal/source/imapsrc"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/syncer"
	"github.com/emaillistener/emaillistener/internal/ui"
)

// wired is what New hands to the HTTP layer.
type wired struct {
	service    *service.Service
	clusterAPI httpapi.Cluster // nil on a single node
	ui         *ui.Handler     // the dashboard
	inflight   *budget.Budget
	webhooks   map[string]http.Handler // endpoints mail services call
	native     http.Handler            // the native API, /v1/
}

// protocol is one mail protocol as every consumer sees it.
type protocol struct {
	live    syncer.Protocol
	history history.Protocol
	service service.Protocol
}

// sessions makes a protocol of an adapter whose sessions serve live sync,
// history loads and the mailbox checks alike.
func sessions[S interface {
	syncer.Session
	history.Session
	service.Probe
}](open func(context.Context, *mail.Mailbox) (S, error), watch func(mail.Folder) bool,
	send func(context.Context, *mail.Mailbox, *mail.Message) error, describe func(*mail.Mailbox, error) string) protocol {
	return protocol{
		live: syncer.Protocol{
			Dialer:         syncer.DialerFunc(func(ctx context.Context, mb *mail.Mailbox) (syncer.Session, error) { return open(ctx, mb) }),
			WatchByDefault: watch,
		},
		history: history.Protocol{
			Dial:           func(ctx context.Context, mb *mail.Mailbox) (history.Session, error) { return open(ctx, mb) },
			WatchByDefault: watch,
		},
		service: service.Protocol{
			Open:     func(ctx context.Context, mb *mail.Mailbox) (service.Probe, error) { return open(ctx, mb) },
			Send:     send,
			Describe: describe,
		},
	}
}

// wire builds every component and records their lifecycles in a.parts.
func (a *App) wire(version string, opts *Options) (*wired, error) {
	cfg, log, reg := a.cfg, a.log, a.reg
	mailTLS := opts.IMAPTLS
	if mailTLS == nil {
		var err error
		if mailTLS, err = certs.ClientConfig("EL_IMAP_TLS_CA_FILE", cfg.IMAPTLSCAFile, cfg.IMAPTLSInsecure); err != nil {
			return nil, err
		}
	}
	callbackNets, err := netguard.Parse("EL_CALLBACK_NETWORKS", cfg.CallbackNetworks)
	if err != nil {
		return nil, err
	}
	mailNets, err := netguard.Parse("EL_MAIL_NETWORKS", cfg.MailNetworks)
	if err != nil {
		return nil, err
	}
	imapOpts := &imapsrc.Options{DialTimeout: cfg.IMAPDialTimeout, CommandTimeout: cfg.IMAPCommandTimeout,
		TLSConfig: mailTLS, MaxMessageBytes: cfg.MaxMessageBytes, Control: mailNets.Control(), Rechecks: imapsrc.NewRechecks(log),
		Logger: log}
	post := delivery.New(&delivery.Options{PerHost: cfg.DeliveryPerHost, AttemptTimeout: cfg.DeliveryTimeout,
		Backoff: policy(opts.DeliveryBackoff, cfg.DeliveryMaxBackoff), Control: callbackNets.Control(), Logger: log, Registerer: reg})
	sink := &service.Sink{Post: post, Webhook: post, LinkBase: cfg.PublicURL}
	emitter, err := events.New(events.Options{Post: post, Logger: log, Registerer: reg, Panics: a.panics})
	if err != nil {
		return nil, err
	}
	parse := func(raw []byte) (*mail.Message, error) {
		return mime.Parse(raw, &mime.Options{MaxAttachmentBytes: cfg.MaxAttachmentBytes})
	}
	inflight := budget.New(cfg.MaxInflightBytes, reg)
	held := lockout.New(lockout.Options{Min: cfg.AuthRetryMin, Max: cfg.AuthRetryMax, Registerer: reg})

	var (
		st    registry = store.NewMemory()
		parts *clusterParts
	)
	if cfg.UsesRedis() {
		if parts, err = newClusterParts(cfg, log, reg, a.panics); err != nil {
			return nil, err
		}
		st = parts.store
	}
	a.cursor = st.Cursor

	smtpTLS := opts.SMTPTLS
	if smtpTLS == nil {
		smtpTLS = mailTLS
	}
	smtp := outbox.New(outbox.Options{IMAP: imapOpts, Policy: cfg.AppendSent, Registry: st, IsMissing: store.IsMissing, Logger: log,
		SMTP: &sender.Options{DialTimeout: cfg.IMAPDialTimeout, TLSConfig: smtpTLS, Control: imapOpts.Control, Logger: log}})

	// Exchange mailboxes of one server resume TLS sessions instead of each
	// making a full handshake: a fraction of the CPU and of the garbage when
	// thousands of them connect at start-up.
	ewsTLS := mailTLS.Clone()
	if ewsTLS.ClientSessionCache == nil {
		ewsTLS.ClientSessionCache = tls.NewLRUClientSessionCache(ewsSessionCache)
	}
	exchange := ewssrc.New(ewsOptions(cfg, ewsTLS, mailNets, log))
	// In a cluster, Graph posts change notifications to whichever node the
	// load balancer picks; the relay brings them to the node that made the
	// subscription.
	var (
		msgraph    *graphsrc.Adapter
		graphRelay *cluster.Relay
		relay      graphsrc.Relay
	)
	if parts != nil && cfg.GraphNotificationURL != "" {
		graphRelay = cluster.NewRelay(parts.rdb, cluster.RelayOptions{Prefix: cfg.RedisPrefix, Topic: graphRelayTopic,
			Handle: func(b []byte) { msgraph.Relayed(b) }, Logger: log, Registerer: reg, Panics: a.panics})
		relay = graphRelay
	}
	msgraph, err = graphAdapter(cfg, mailTLS, mailNets, relay, log)
	if err != nil {
		return nil, err
	}
	route, err := exo.ParsePolicy(cfg.ExchangeOnline, cfg.ExchangeOnlineHosts, msgraph.AppMode(), cfg.ExchangeOnlineIMAP, cfg.ExchangeOnlineSMTP)
	if err != nil {
		return nil, err
	}
	// Exchange-type mailboxes: EWS on premises; on Exchange Online the
	// transport the policy picks.
	exchangeRouter := exo.Router{Policy: route,
		EWS: exo.Adapter{Open: func(ctx context.Context, mb *mail.Mailbox) (exo.Session, error) {
			return session(exchange.Open(ctx, mb))
		}, Send: exchange.Send, SendRaw: exchange.SendRaw, Describe: ewssrc.Describe},
		IMAP: exo.Adapter{Open: func(ctx context.Context, mb *mail.Mailbox) (exo.Session, error) {
			return session(imapsrc.Open(ctx, mb, imapOpts, cfg.IMAPIdleMax))
		}, Send: smtp.Send, SendRaw: smtp.SendRaw, Describe: imapsrc.Describe},
		Graph: exo.Adapter{Open: func(ctx context.Context, mb *mail.Mailbox) (exo.Session, error) {
			return session(msgraph.Open(ctx, mb))
		}, Send: msgraph.Send, SendRaw: msgraph.SendRaw, Describe: graphsrc.Describe},
	}

	// The mail protocols: adding one is its package under internal/source
	// and one line here.
	protocols := map[mail.ServerKind]protocol{
		mail.ServerIMAP: sessions(func(ctx context.Context, mb *mail.Mailbox) (*imapsrc.Session, error) {
			return imapsrc.Open(ctx, mb, imapOpts, cfg.IMAPIdleMax)
		}, imapsrc.WatchByDefault, smtp.Send, imapsrc.Describe),
		mail.ServerExchange: sessions(exchangeRouter.Open, exo.WatchByDefault, exchangeRouter.Send, exchangeRouter.Describe),
	}
	// The native API's raw MIME.
	for kind, sendRaw := range map[mail.ServerKind]func(context.Context, *mail.Mailbox, []byte) error{
		mail.ServerIMAP: smtp.SendRaw, mail.ServerExchange: exchangeRouter.SendRaw,
	} {
		p := protocols[kind]
		p.service.SendRaw = sendRaw
		protocols[kind] = p
	}
	live := map[mail.ServerKind]syncer.Protocol{}
	loads := map[mail.ServerKind]history.Protocol{}
	calls := map[mail.ServerKind]service.Protocol{}
	for kind, p := range protocols {
		live[kind], loads[kind], calls[kind] = p.live, p.history, p.service
	}

	sopts := syncer.Options{
		Protocols: live, Sink: sink, Cursors: st, Parser: parse,
		IdleMax: cfg.IMAPIdleMax, FolderPoll: cfg.IMAPFolderPoll, Reconnect: policy(opts.Reconnect, cfg.ReconnectMaxDelay),
		DialConcurrency: cfg.IMAPDialConcurrency, DialRate: cfg.IMAPDialRate, Budget: inflight, MaxMessageBytes: cfg.MaxMessageBytes,
		TokenRefreshWait: cfg.TokenRefreshWait, Lockout: held, Logger: log, Registerer: reg, Panics: a.panics,
	}
	sopts.OnStatus = emitter.State
	if parts != nil {
		publish := placement.StatusPublisher(parts.store.PutStatus, cfg.NodeID, log)
		sopts.Leaser = leaser{parts.leases}
		sopts.OnStatus = func(mb *mail.Mailbox, st mail.Status) { publish(mb, st); emitter.State(mb, st) }
	}
	runner, err := syncer.New(sopts)
	if err != nil {
		return nil, err
	}
	loader, err := history.New(history.Options{Protocols: loads, Deliver: sink.DeliverWithin(service.HistoryPatience), Parse: parse,
		Concurrency: cfg.HistoryConcurrency, Budget: inflight, Lockout: held, OnProgress: emitter.Progress, Logger: log, Registerer: reg,
		Panics: a.panics})
	if err != nil {
		return nil, err
	}

	var (
		place interface {
			service.Placement
			Start(context.Context) error
			Stop(context.Context) error
		}
		w = &wired{inflight: inflight}
	)
	if h := msgraph.Handler(); h != nil {
		path := strings.TrimPrefix(strings.ToLower(msgraph.NotificationPath()), cfg.PathPrefix)
		if path == "" || path == "/" || strings.HasPrefix(path, "/api/") {
			return nil, fmt.Errorf("EL_GRAPH_NOTIFICATION_URL needs a path of its own (e.g. https://listener.example.com/graph/notifications), not %q", path)
		}
		w.webhooks = map[string]http.Handler{path: h}
	}
	a.store = "memory"
	node := ""
	if parts == nil {
		place = placement.NewLocal(placement.LocalOptions{Registry: st, Runner: runner, Capacity: cfg.MaxSubscriptions,
			Logger: log, Registerer: reg})
	} else {
		cl := placement.NewCluster(placement.ClusterOptions{Store: parts.store, Members: parts.members, Holders: parts.leases,
			Runner: runner, Node: cfg.NodeID, Skip: store.IsMissing, Logger: log, Registerer: reg, Panics: a.panics})
		a.store, w.clusterAPI, node, place = "redis", cl, cfg.NodeID, cl
	}
	w.service, err = service.New(service.Options{Placement: place, Loads: loader, Counter: runner, Protocols: calls,
		Version: version, Store: a.store, Node: node, ProbeTimeout: cfg.ValidateTimeout, ProbeConcurrency: cfg.ProbeConcurrency,
		PingClient: service.PingClient(callbackNets.Control()), Restricted: callbackNets != nil,
		OAuth: oauthtoken.New(oauthtoken.Options{Transport: httpTransport(cfg, mailTLS, mailNets)}), Logger: log})
	if err != nil {
		return nil, err
	}
	sink.Renew = w.service.RenewToken // native accounts' OAuth tokens
	tokens, err := nativeapi.ParseTokens(cfg.APITokens.Reveal())
	if err != nil {
		return nil, err
	}
	if w.native, err = nativeapi.New(nativeapi.Options{Accounts: w.service, Tokens: tokens, Parse: parse, LinkBase: cfg.PublicURL,
		Logger: log}); err != nil {
		return nil, err
	}
	w.ui, err = ui.New(ui.Options{Source: w.service, Node: cfg.NodeID, Version: version, Logger: log})
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken == "" {
		log.Warn("the dashboard (/ui/), /api/cluster and /debug/pprof/ answer without a token: set EL_ADMIN_TOKEN where others reach the API port")
	}

	// Lifecycles, in start order; Stop runs them backwards. In a cluster the
	// node leaves (peers start taking its mailboxes over) before placement
	// stops deciding, and releases its leases after the subscriptions ended.
	if parts != nil {
		a.parts = append(a.parts, parts.lifecycle(log)...)
	}
	a.parts = append(a.parts,
		component{name: "webhook events", start: emitter.Start, stop: emitter.Stop},
		component{name: "exchange streams", start: exchange.Start, stop: exchange.Stop},
	)
	if graphRelay != nil {
		a.parts = append(a.parts, component{name: "graph notification relay", start: graphRelay.Start, stop: graphRelay.Stop})
	}
	a.parts = append(a.parts,
		component{name: "graph poller", start: msgraph.Start, stop: msgraph.Stop},
		component{name: "syncer", start: func(ctx context.Context) error { runner.Start(ctx); return nil }, stop: runner.Stop},
		component{name: "history", start: func(ctx context.Context) error { loader.Start(ctx); return nil }, stop: loader.Stop},
		component{name: "placement", start: place.Start, stop: place.Stop},
	)
	if parts != nil {
		a.parts = append(a.parts, component{name: "cluster leave", stop: parts.members.Leave})
	}
	return w, nil
}

// policy is p, or 1 s doubling to max when p is unset.
func policy(p backoff.Policy, max time.Duration) backoff.Policy {
	if p == (backoff.Policy{}) {
		return backoff.Policy{Min: time.Second, Max: max}
	}
	return p
}

// registry is the state store, memory or Redis.
type registry interface {
	placement.LocalRegistry
	outbox.Registry
	syncer.Cursors
}

// session returns an adapter's session as the router's interface; a failed
// open is a nil interface, not a typed nil.
func session[S exo.Session](s S, err error) (exo.Session, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// graphRelayTopic names the cluster relay of Graph change notifications.
const graphRelayTopic = "graph-notifications"

// ewsSessionCache is how many Exchange servers' TLS sessions are kept.
const ewsSessionCache = 256

// ewsOptions configures the Exchange adapter: the mail servers' TLS settings
// and network allow-list, as for IMAP.
// graphAdapter builds the Microsoft Graph adapter: application mode when
// credentials are configured, otherwise for mailboxes that bring a Graph
// token of their own.
func graphAdapter(cfg config.Config, tlsConf *tls.Config, nets *netguard.Allow, relay graphsrc.Relay, log *slog.Logger) (*graphsrc.Adapter, error) {
	secret, err := cfg.GraphSecret()
	if err != nil {
		return nil, err
	}
	o := graphsrc.Options{BaseURL: cfg.GraphURL, LoginURL: cfg.GraphLoginURL, Transport: httpTransport(cfg, tlsConf, nets),
		MaxMessageBytes: cfg.MaxMessageBytes,
		PollInterval:    cfg.GraphPollInterval, NotificationURL: cfg.GraphNotificationURL, Category: cfg.EWSCategory,
		Slack: cfg.EWSClockSkew, Relay: relay, Logger: log}
	if o.Slack == 0 {
		o.Slack = -1 // zero configured means none, not the default
	}
	if cfg.GraphApp() {
		o.Tenant, o.ClientID, o.ClientSecret = cfg.GraphTenantID, cfg.GraphClientID, secret.Reveal()
	}
	return graphsrc.New(o)
}

// httpTransport reaches mail providers' HTTP APIs (Graph, OAuth token
// endpoints) with the mail servers' TLS settings and network allow-list.
func httpTransport(cfg config.Config, tlsConf *tls.Config, nets *netguard.Allow) *http.Transport {
	d := &net.Dialer{Timeout: cfg.IMAPDialTimeout, KeepAlive: 30 * time.Second, Control: nets.Control()}
	return &http.Transport{DialContext: d.DialContext, TLSClientConfig: tlsConf.Clone(), TLSHandshakeTimeout: cfg.IMAPDialTimeout,
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ExpectContinueTimeout: time.Second}
}

func ewsOptions(cfg config.Config, tlsConf *tls.Config, nets *netguard.Allow, log *slog.Logger) ewssrc.Options {
	d := &net.Dialer{Timeout: cfg.IMAPDialTimeout, KeepAlive: 30 * time.Second, Control: nets.Control()}
	// HTTP/1.1 only, settled here once: NTLM authenticates a connection (not
	// an HTTP/2 stream), and a template that never writes its TLS
	// configuration lets every mailbox's transport share it.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{"http/1.1"}
	t := &http.Transport{DialContext: d.DialContext, TLSClientConfig: tlsConf, TLSHandshakeTimeout: cfg.IMAPDialTimeout,
		Protocols:           &protocols,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second, ExpectContinueTimeout: time.Second,
		// Small buffers: most connections hold a stream of short envelopes,
		// and large bodies (MIME) are read and written in big chunks that
		// bypass the buffers anyway.
		ReadBufferSize: 1 << 10, WriteBufferSize: 1 << 10}
	o := ewssrc.Options{Transport: t, Version: cfg.EWSVersion, Timeout: cfg.EWSTimeout, MaxMessageBytes: cfg.MaxMessageBytes,
		Idle: cfg.EWSHeartbeatTimeout, GroupSize: cfg.EWSGroupSize, Category: cfg.EWSCategory, BaselineSlack: cfg.EWSClockSkew,
		Logger: log}
	if o.BaselineSlack == 0 {
		o.BaselineSlack = -1 // zero configured means none, not the default
	}
	switch strings.ToLower(cfg.EWSAuth) {
	case "basic":
		o.Auth = ews.AuthBasic
	case "ntlm":
		o.Auth = ews.AuthNTLM
	}
	if cfg.EWSImpersonationUser != "" {
		o.Impersonation = &ewssrc.Account{User: cfg.EWSImpersonationUser, Password: cfg.EWSImpersonationPassword.Reveal()}
	}
	for _, u := range strings.Split(cfg.EWSAutodiscoverURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.AutodiscoverURLs = append(o.AutodiscoverURLs, u)
		}
	}
	return o
}
