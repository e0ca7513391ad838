// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"errors"
	"net/http"
	"time"
)

// Defaults of the zero Options. Each names the Microsoft limit it copies, where
// there is one.
const (
	// DefaultClientSecret is the client secret of the one registered application
	// when Options.ClientSecret is empty.
	DefaultClientSecret = "graphfake-client-secret"
	// DefaultTenantDomain is the tenant's initial domain.
	DefaultTenantDomain = "graphfake.onmicrosoft.com"
	// DefaultTokenLifetime is how long issued access tokens live; Microsoft Entra ID
	// issues tokens for 60 to 90 minutes and answers expires_in 3599.
	DefaultTokenLifetime = time.Hour
	// DefaultMailboxConcurrency is Outlook's limit of concurrent requests per app
	// and mailbox.
	DefaultMailboxConcurrency = 4
	// DefaultMailboxRequestLimit is Outlook's limit of requests per app and mailbox
	// within DefaultRequestWindow.
	DefaultMailboxRequestLimit = 10000
	// DefaultRequestWindow is the window of DefaultMailboxRequestLimit.
	DefaultRequestWindow = 10 * time.Minute
	// DefaultThrottleRetryAfter is the Retry-After of 429s for concurrency and
	// request-rate throttling.
	DefaultThrottleRetryAfter = time.Second
	// DefaultPageSize is the page size of collections (folders, messages, delta)
	// when the client asks for none.
	DefaultPageSize = 10
	// MaxPageSize caps $top and odata.maxpagesize.
	MaxPageSize = 1000
	// DefaultDeltaLogLimit is how many changes a folder remembers for delta
	// tokens; older tokens get 410 Gone (Outlook's delta token cache is likewise
	// bounded, by size rather than time).
	DefaultDeltaLogLimit = 5000
	// DefaultNotifyBatchWindow is how long changes are collected before one POST
	// carries them all to a notification URL.
	DefaultNotifyBatchWindow = 5 * time.Millisecond
	// DefaultNotifyMaxBatch is the most notifications in one POST.
	DefaultNotifyMaxBatch = 100
	// DefaultNotifyParallel is the number of POSTs in flight per notification URL.
	DefaultNotifyParallel = 4
	// DefaultNotifyTimeout is Graph's timeout for a notification POST.
	DefaultNotifyTimeout = 3 * time.Second
	// DefaultNotifyRetryFor is how long Graph keeps retrying a notification.
	DefaultNotifyRetryFor = 4 * time.Hour
	// DefaultNotifyRetryInitial and DefaultNotifyRetryMax bound the retry backoff
	// (doubling).
	DefaultNotifyRetryInitial = time.Second
	DefaultNotifyRetryMax     = 5 * time.Minute
	// DefaultValidationTimeout is how long a notification URL has to answer the
	// validation request.
	DefaultValidationTimeout = 10 * time.Second
	// DefaultMaxRequestBytes is Graph's request size limit (4 MB).
	DefaultMaxRequestBytes = 4 << 20
	// MaxSubscriptionLifetime is the longest lifetime of a subscription to Outlook
	// messages without resource data (4230 minutes).
	MaxSubscriptionLifetime = 4230 * time.Minute
	// MinSubscriptionLifetime is the shortest: a requested expiration sooner than
	// this is moved out to it.
	MinSubscriptionLifetime = 45 * time.Minute
)

// DefaultRoles are the application permissions of tokens from the token endpoint
// when Options.Roles is nil: what a mail-sync service is granted.
var DefaultRoles = []string{"Mail.ReadWrite", "Mail.Send", "User.Read.All"}

// Options configures Start. The zero value is a plain-HTTP server with one
// registered application (random tenant and client ids, DefaultClientSecret) and
// Microsoft's limits.
type Options struct {
	// TLS serves HTTPS with a fresh self-signed certificate (see Server.CertPEM).
	TLS bool
	// Tenant is the directory (tenant) id, a GUID; empty means a random one.
	Tenant string
	// TenantDomain is the tenant's domain, accepted in place of Tenant in token
	// endpoint URLs; empty means DefaultTenantDomain.
	TenantDomain string
	// ClientID is the application (client) id of the one registered application;
	// empty means a random GUID.
	ClientID string
	// ClientSecret is its secret; empty means DefaultClientSecret.
	ClientSecret string
	// TokenLifetime is the lifetime of access tokens from the token endpoint; zero
	// means DefaultTokenLifetime.
	TokenLifetime time.Duration
	// Roles are the application permissions in those tokens; nil means
	// DefaultRoles. Graph checks them per operation (403 ErrorAccessDenied).
	Roles []string
	// MailboxConcurrency is the number of concurrent requests per mailbox; more
	// get 429 (ApplicationThrottled, MailboxConcurrency). Zero means the default;
	// negative means no limit.
	MailboxConcurrency int
	// MailboxRequestLimit is the number of requests per mailbox per RequestWindow;
	// more get 429. Zero means the default; negative means no limit.
	MailboxRequestLimit int
	// RequestWindow is the window of MailboxRequestLimit; zero means the default.
	RequestWindow time.Duration
	// ThrottleRetryAfter is the Retry-After of concurrency and rate 429s; zero
	// means the default.
	ThrottleRetryAfter time.Duration
	// DeltaLogLimit is the number of changes each folder keeps for delta tokens;
	// zero means the default.
	DeltaLogLimit int
	// NotifyBatchWindow, NotifyMaxBatch, NotifyParallel and NotifyTimeout shape
	// change notification POSTs; zero means the defaults.
	NotifyBatchWindow time.Duration
	NotifyMaxBatch    int
	NotifyParallel    int
	NotifyTimeout     time.Duration
	// NotifyRetryInitial, NotifyRetryMax and NotifyRetryFor shape retries of
	// notifications that were not answered with 2xx in time: the first retry after
	// NotifyRetryInitial, doubling up to NotifyRetryMax, given up after
	// NotifyRetryFor. Zero means the defaults; tests use milliseconds.
	NotifyRetryInitial time.Duration
	NotifyRetryMax     time.Duration
	NotifyRetryFor     time.Duration
	// ValidationTimeout bounds the validation request of a new subscription; zero
	// means the default.
	ValidationTimeout time.Duration
	// ReauthorizationGrace, when positive, pauses the notifications of a
	// subscription that long after a reauthorizationRequired lifecycle event until
	// the client reauthorizes or renews it; changes meanwhile are lost, as Graph
	// documents. Zero never pauses.
	ReauthorizationGrace time.Duration
	// NotifyClient posts validation requests and notifications; nil means a
	// plain client. Tests with HTTPS receivers pass one trusting their certificate.
	NotifyClient *http.Client
	// MaxRequestBytes bounds request bodies; zero means the default.
	MaxRequestBytes int64
	// Now is the clock for token, subscription and message times; nil means
	// time.Now. Network timeouts always use real time.
	Now func() time.Time
	// Logf, if set, receives one line per noteworthy event (rejected requests,
	// faults, notification failures, unsupported options the fake ignored).
	Logf func(format string, args ...any)
	// Trace additionally logs every API request line and response status.
	Trace bool
}

func (o *Options) setDefaults() {
	if o.Tenant == "" {
		o.Tenant = newGUID()
	}
	if o.TenantDomain == "" {
		o.TenantDomain = DefaultTenantDomain
	}
	if o.ClientID == "" {
		o.ClientID = newGUID()
	}
	if o.ClientSecret == "" {
		o.ClientSecret = DefaultClientSecret
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	if o.Roles == nil {
		o.Roles = DefaultRoles
	}
	if o.MailboxConcurrency == 0 {
		o.MailboxConcurrency = DefaultMailboxConcurrency
	}
	if o.MailboxRequestLimit == 0 {
		o.MailboxRequestLimit = DefaultMailboxRequestLimit
	}
	setDur(&o.RequestWindow, DefaultRequestWindow)
	setDur(&o.ThrottleRetryAfter, DefaultThrottleRetryAfter)
	if o.DeltaLogLimit <= 0 {
		o.DeltaLogLimit = DefaultDeltaLogLimit
	}
	setDur(&o.NotifyBatchWindow, DefaultNotifyBatchWindow)
	if o.NotifyMaxBatch <= 0 {
		o.NotifyMaxBatch = DefaultNotifyMaxBatch
	}
	if o.NotifyParallel <= 0 {
		o.NotifyParallel = DefaultNotifyParallel
	}
	setDur(&o.NotifyTimeout, DefaultNotifyTimeout)
	setDur(&o.NotifyRetryInitial, DefaultNotifyRetryInitial)
	setDur(&o.NotifyRetryMax, DefaultNotifyRetryMax)
	setDur(&o.NotifyRetryFor, DefaultNotifyRetryFor)
	setDur(&o.ValidationTimeout, DefaultValidationTimeout)
	if o.NotifyClient == nil {
		o.NotifyClient = &http.Client{}
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func (o *Options) validate() error {
	if !isGUID(o.Tenant) {
		return errors.New("graphfake: Options.Tenant is not a GUID")
	}
	if !isGUID(o.ClientID) {
		return errors.New("graphfake: Options.ClientID is not a GUID")
	}
	if o.NotifyRetryMax < o.NotifyRetryInitial {
		return errors.New("graphfake: Options.NotifyRetryMax below NotifyRetryInitial")
	}
	return nil
}
