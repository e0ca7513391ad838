// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"errors"
	"strings"
	"time"
)

// AuthMode selects the HTTP authentication schemes the fake offers and accepts.
// Modes combine with |.
type AuthMode uint8

const (
	// AuthBasic accepts "Authorization: Basic" and offers `Basic realm="…"`.
	AuthBasic AuthMode = 1 << iota
	// AuthNTLM runs a server-side NTLMv2 handshake under the "NTLM" and "Negotiate"
	// schemes (raw NTLMSSP tokens; Kerberos is not available) and authenticates the
	// TCP connection, as IIS does.
	AuthNTLM
	// AuthBearer accepts OAuth access tokens registered with AddToken.
	AuthBearer
)

// Defaults of the zero Options.
const (
	// DefaultAuth is what an on-premises IIS offers EWS clients out of the box.
	DefaultAuth = AuthBasic | AuthNTLM
	// DefaultHeartbeat is the streaming keep-alive interval real clients expect
	// (they give up after twice this much silence).
	DefaultHeartbeat = 45 * time.Second
	// DefaultSubscriptionIdle is how long a streaming subscription survives without a
	// connected stream.
	DefaultSubscriptionIdle = 30 * time.Minute
	// DefaultHangingConnectionLimit is Exchange 2016/2019's and Exchange Online's
	// limit of open streaming connections per account.
	DefaultHangingConnectionLimit = 10
	// DefaultMaxSubscriptions is the on-premises default of EWSMaxSubscriptions per
	// account.
	DefaultMaxSubscriptions = 5000
	// DefaultMaxRequestBytes bounds a request body.
	DefaultMaxRequestBytes = 64 << 20
)

// Options configures Start. The zero value is a plain-HTTP server offering Basic and
// NTLM, with Exchange's default timings and limits and one backend.
type Options struct {
	// TLS serves HTTPS with a fresh self-signed certificate (see Server.CertPEM).
	TLS bool
	// Auth selects the authentication schemes; zero means DefaultAuth.
	Auth AuthMode
	// Heartbeat is the interval of keep-alive messages on streams; zero means
	// DefaultHeartbeat. Tests use 100 ms to 1 s.
	Heartbeat time.Duration
	// ConnectionLifetime, when positive, replaces the ConnectionTimeout (minutes) a
	// client asks for in GetStreamingEvents, so tests see streams end in seconds.
	ConnectionLifetime time.Duration
	// SubscriptionIdle is how long a subscription lives without an attached stream
	// (for pull subscriptions: without GetEvents, unless their own Timeout is shorter);
	// zero means DefaultSubscriptionIdle.
	SubscriptionIdle time.Duration
	// ServiceAccount and ServicePassword define the one login that may impersonate
	// mailboxes (ExchangeImpersonation). It has no mailbox of its own.
	ServiceAccount, ServicePassword string
	// Backends is the number of simulated mailbox servers; zero means 1. Each mailbox
	// has a home backend; subscriptions live on the backend that created them.
	Backends int
	// HangingConnectionLimit is the number of open streams per account (the
	// impersonated mailbox when impersonating); zero means the default.
	HangingConnectionLimit int
	// MaxSubscriptions is the number of live subscriptions per account (the
	// impersonated mailbox when impersonating); zero means the default.
	MaxSubscriptions int
	// DeclEveryEnvelope puts an XML declaration before every envelope of a stream;
	// by default only the first one has it. Real servers differ; clients must cope.
	DeclEveryEnvelope bool
	// MaxRequestBytes bounds request bodies; zero means DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// Logf, if set, receives one line per noteworthy event (auth failures, faults,
	// unsupported request parts the fake ignored).
	Logf func(format string, args ...any)
	// Trace additionally logs every request and response body through Logf (bodies
	// truncated to 4 KiB), for finding out what a client sends.
	Trace bool
}

func (o *Options) setDefaults() {
	if o.Auth == 0 {
		o.Auth = DefaultAuth
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.SubscriptionIdle <= 0 {
		o.SubscriptionIdle = DefaultSubscriptionIdle
	}
	if o.Backends <= 0 {
		o.Backends = 1
	}
	if o.HangingConnectionLimit <= 0 {
		o.HangingConnectionLimit = DefaultHangingConnectionLimit
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
}

func (o *Options) validate() error {
	if o.Auth&^(AuthBasic|AuthNTLM|AuthBearer) != 0 {
		return errors.New("ewsfake: Options.Auth has unknown bits")
	}
	if o.ServiceAccount == "" && o.ServicePassword != "" {
		return errors.New("ewsfake: Options.ServicePassword without ServiceAccount")
	}
	if o.Backends > 255 {
		return errors.New("ewsfake: Options.Backends above 255")
	}
	return nil
}

func (m AuthMode) String() string {
	var parts []string
	for _, p := range []struct {
		bit  AuthMode
		name string
	}{{AuthBasic, "Basic"}, {AuthNTLM, "NTLM"}, {AuthBearer, "Bearer"}} {
		if m&p.bit != 0 {
			parts = append(parts, p.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}
