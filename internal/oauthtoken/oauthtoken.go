// SPDX-License-Identifier: Apache-2.0

// Package oauthtoken redeems the OAuth 2.0 refresh token of a native account
// for an access token at the provider's token endpoint (RFC 6749 section 6:
// Google, Microsoft's identity platform, any standard provider), through
// golang.org/x/oauth2. Creatio's mailboxes never come here: Creatio
// refreshes their tokens itself.
package oauthtoken

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// DefaultTimeout bounds one token request.
const DefaultTimeout = 30 * time.Second

// Options configures New.
type Options struct {
	// Transport carries the token requests (TLS settings, the dialer with
	// the network allow-list); nil: http.DefaultTransport's clone.
	Transport http.RoundTripper
	Timeout   time.Duration // per request; default DefaultTimeout
}

// Client redeems refresh tokens; it is safe for concurrent use.
type Client struct {
	http *http.Client
}

// New returns a client; it does no I/O.
func New(opts Options) *Client {
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	// No redirects: a token endpoint answers itself, and the client secret
	// must not follow a redirect elsewhere.
	return &Client{http: &http.Client{Transport: opts.Transport, Timeout: opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Token redeems o's refresh token. It returns the access token and the
// refresh token to keep: a new one when the provider rotated it (Microsoft
// does on every refresh), else o's. A refusal by the provider (a revoked or
// expired grant, a wrong client) is mail.ClassAuth; the provider's own
// words are in the error, never the secrets sent.
func (c *Client) Token(ctx context.Context, o *mail.OAuth2) (access, refresh string, err error) {
	const op = "oauth token"
	if o == nil || o.TokenURL == "" || o.RefreshToken == "" {
		return "", "", mail.Errorf(mail.ClassConfig, op, "the account has no OAuth token endpoint or refresh token")
	}
	cfg := oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: o.TokenURL}}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http)
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: o.RefreshToken}).Token()
	if err != nil {
		return "", "", classify(op, err)
	}
	refresh = tok.RefreshToken
	if refresh == "" {
		refresh = o.RefreshToken
	}
	return tok.AccessToken, refresh, nil
}

// classify gives a token request's failure its class. The provider's
// answer (RetrieveError) names the OAuth error code and description only.
func classify(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		if msg == "" && re.Response != nil {
			msg = re.Response.Status
		}
		class := mail.ClassAuth
		if re.Response != nil && re.Response.StatusCode >= 500 {
			class = mail.ClassConnect
		}
		return mail.Errorf(class, op, "the token endpoint refused the refresh token: %s", mail.Excerpt(msg, 300))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return mail.Wrap(mail.ClassTimeout, op, err)
	}
	return mail.Wrap(mail.ClassConnect, op, err)
}
