// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	ntlmssp "github.com/Azure/go-ntlmssp"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// AuthScheme selects how requests authenticate.
type AuthScheme int

const (
	// AuthAuto lets the server decide: the first request goes out without
	// credentials and the schemes its 401 offers pick NTLM (when NTLM or
	// Negotiate is offered) or Basic (when only Basic is). The choice is kept
	// for the Client, so Basic is then sent with every request, without a
	// 401 round trip each time. With an empty User, requests stay anonymous.
	AuthAuto AuthScheme = iota
	AuthBasic
	AuthNTLM
	AuthBearer
)

func (s AuthScheme) String() string {
	switch s {
	case AuthAuto:
		return "auto"
	case AuthBasic:
		return "Basic"
	case AuthNTLM:
		return "NTLM"
	case AuthBearer:
		return "Bearer"
	}
	return fmt.Sprintf("AuthScheme(%d)", int(s))
}

// Auth holds the credentials. User may be "DOMAIN\user" or a UPN.
type Auth struct {
	Scheme   AuthScheme
	User     string
	Password string
	// Token is the OAuth access token for AuthBearer.
	Token string
	// TokenFunc, when set, supplies the bearer token for every request
	// instead of Token (a token source that refreshes before expiry). Its
	// error fails the request as ClassAuth.
	TokenFunc func(ctx context.Context) (string, error)
}

func (a Auth) validate() error {
	switch a.Scheme {
	case AuthAuto:
	case AuthBasic, AuthNTLM:
		if a.User == "" {
			return fmt.Errorf("%s authentication needs a user name", a.Scheme)
		}
	case AuthBearer:
		if a.Token == "" && a.TokenFunc == nil {
			return fmt.Errorf("bearer authentication needs a token")
		}
	default:
		return fmt.Errorf("unknown authentication scheme %d", int(a.Scheme))
	}
	return nil
}

// What AuthAuto settled on, per transport.
const (
	autoUnknown int32 = iota
	autoBasic
	autoNTLM
)

// authTransport adds the credentials of one Auth to every request. It is safe
// for concurrent use; the only state is AuthAuto's choice, an atomic.
type authTransport struct {
	base  http.RoundTripper
	lanes *lanes // for NTLM when base is an *http.Transport
	auth  Auth
	mode  atomic.Int32
}

func newAuthTransport(base http.RoundTripper, a Auth) *authTransport {
	at := &authTransport{base: base, auth: a}
	if t, ok := base.(*http.Transport); ok && (a.Scheme == AuthNTLM || a.Scheme == AuthAuto) {
		at.lanes = newLanes(t)
	}
	return at
}

// NewAuthTransport returns a RoundTripper that authenticates every request
// sent through base with a, exactly like a Client does (AuthAuto detection
// included), for the autodiscover client. Like New, it clones an
// *http.Transport (nil: http.DefaultTransport) and limits the clone to
// HTTP/1.1: NTLM authenticates a TCP connection, not a request, so a pooled
// connection keeps the identity of whoever authenticated it and must never
// serve other credentials. Any other RoundTripper is used as it is. The
// result has CloseIdleConnections (http.Client.CloseIdleConnections calls
// it).
func NewAuthTransport(base http.RoundTripper, a Auth) (http.RoundTripper, error) {
	if err := a.validate(); err != nil {
		return nil, mail.Errorf(mail.ClassConfig, "ews auth", "%v", err)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*http.Transport); ok {
		base = http1(t)
	}
	return newAuthTransport(base, a), nil
}

// CloseIdleConnections closes the idle connections of the base transport.
func (a *authTransport) CloseIdleConnections() {
	if c, ok := a.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	if a.lanes != nil {
		a.lanes.closeIdle()
	}
}

// authNote records, for one request, what the transport did; the client reads
// it to say which scheme a 401 rejected.
type authNote struct {
	tried   string // scheme whose credentials went out, "" when none
	offered string // schemes of the last 401's WWW-Authenticate
}

type noteKey struct{}

func noteFrom(ctx context.Context) *authNote {
	if n, ok := ctx.Value(noteKey{}).(*authNote); ok {
		return n
	}
	return &authNote{}
}

func (a *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	note := noteFrom(req.Context())
	switch {
	case a.auth.Scheme == AuthBasic, a.auth.Scheme == AuthAuto && a.mode.Load() == autoBasic:
		return a.basic(req, note)
	case a.auth.Scheme == AuthNTLM, a.auth.Scheme == AuthAuto && a.mode.Load() == autoNTLM:
		return a.ntlm(req, note, nil)
	case a.auth.Scheme == AuthBearer:
		return a.bearer(req, note)
	case a.auth.User == "":
		return a.observe(req, note)
	}
	return a.detect(req, note)
}

func (a *authTransport) basic(req *http.Request, note *authNote) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.SetBasicAuth(a.auth.User, a.auth.Password)
	note.tried = "Basic"
	return a.observe(r, note)
}

func (a *authTransport) bearer(req *http.Request, note *authNote) (*http.Response, error) {
	tok := a.auth.Token
	if a.auth.TokenFunc != nil {
		t, err := a.auth.TokenFunc(req.Context())
		if err != nil {
			closeBody(req)
			return nil, &mail.Error{Class: mail.ClassAuth, Op: "ews token", Err: err}
		}
		tok = t
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	note.tried = "Bearer"
	return a.observe(r, note)
}

// ntlm runs the request through go-ntlmssp, which sends it anonymously first
// (a connection authenticated earlier passes) and does the NTLM handshake on
// a 401 that offers NTLM or Negotiate. It never sends Basic (AllowBasicAuth
// false): on a server that only offers Basic the 401 comes back. sawNTLM, if
// not nil, is set when the handshake started.
func (a *authTransport) ntlm(req *http.Request, note *authNote, sawNTLM *bool) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.SetBasicAuth(a.auth.User, a.auth.Password) // go-ntlmssp's way of passing credentials
	if a.lanes == nil {
		n := ntlmssp.Negotiator{RoundTripper: &observer{base: a.base, note: note, sawNTLM: sawNTLM}}
		return n.RoundTrip(r)
	}
	var (
		lane    *http.Transport
		release func()
	)
	if req.Context().Value(streamKey{}) != nil {
		lane, release = a.lanes.dedicated()
	} else {
		var err error
		if lane, err = a.lanes.acquire(req.Context()); err != nil {
			closeBody(req)
			return nil, err
		}
		release = func() { a.lanes.release(lane) }
	}
	resp, err := a.handshake(&observer{base: lane, note: note, sawNTLM: sawNTLM}, req)
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &laneBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// handshake sends req through a lane (one connection): without credentials
// first, since the connection may be authenticated already, and on a 401
// offering NTLM or Negotiate the three-message handshake, each response
// drained before the next message so the connection is reused.
// go-ntlmssp's Negotiator keeps the first 401 open until the end, which on a
// one-connection lane would wait for itself; its message functions are used
// here instead.
func (a *authTransport) handshake(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		closeBody(req)
		return nil, mail.Errorf(mail.ClassInternal, "ews ntlm", "a request body that cannot be sent again")
	}
	send := func(authz string) (*http.Response, error) {
		r := req.Clone(req.Context())
		if req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = b
		}
		r.Header.Del("Authorization")
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		return rt.RoundTrip(r)
	}
	resp, err := send("")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	scheme := ntlmScheme(resp.Header)
	if scheme == "" {
		return resp, nil // no NTLM offered: the 401 is the answer
	}
	drain(resp)
	negotiate, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		return nil, mail.Errorf(mail.ClassInternal, "ews ntlm", "negotiate message: %v", err)
	}
	if resp, err = send(scheme + " " + base64.StdEncoding.EncodeToString(negotiate)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenge := challengeToken(resp.Header, scheme)
	if challenge == nil {
		return resp, nil // no challenge: the server refused the handshake
	}
	drain(resp)
	authenticate, err := ntlmssp.NewAuthenticateMessage(challenge, a.auth.User, a.auth.Password, nil)
	if err != nil {
		return nil, mail.Errorf(mail.ClassProtocol, "ews ntlm", "the server's NTLM challenge is unusable: %v", err)
	}
	return send(scheme + " " + base64.StdEncoding.EncodeToString(authenticate))
}

// ntlmScheme is the scheme a 401 offers for NTLM: NTLM when offered, else
// Negotiate (which IIS accepts carrying raw NTLM); "" for neither.
func ntlmScheme(h http.Header) string {
	var negotiate bool
	for _, v := range h.Values("Www-Authenticate") {
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch {
		case strings.EqualFold(f[0], "NTLM"):
			return "NTLM"
		case strings.EqualFold(f[0], "Negotiate"):
			negotiate = true
		}
	}
	if negotiate {
		return "Negotiate"
	}
	return ""
}

// challengeToken is the token of the scheme's challenge in a 401, nil when
// there is none.
func challengeToken(h http.Header, scheme string) []byte {
	for _, v := range h.Values("Www-Authenticate") {
		f := strings.Fields(v)
		if len(f) == 2 && strings.EqualFold(f[0], scheme) {
			if b, err := base64.StdEncoding.DecodeString(f[1]); err == nil && len(b) > 0 {
				return b
			}
		}
	}
	return nil
}

// detect is AuthAuto's first exchanges: NTLM when the server takes part in a
// handshake, Basic when its 401 offers only Basic.
func (a *authTransport) detect(req *http.Request, note *authNote) (*http.Response, error) {
	var sawNTLM bool
	resp, err := a.ntlm(req, note, &sawNTLM)
	if err != nil {
		return nil, err
	}
	switch {
	case sawNTLM:
		if resp.StatusCode != http.StatusUnauthorized {
			a.mode.Store(autoNTLM)
		}
		return resp, nil
	case resp.StatusCode != http.StatusUnauthorized || !offers(resp.Header, "Basic") || req.GetBody == nil:
		return resp, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return resp, nil
	}
	drain(resp)
	r := req.Clone(req.Context())
	r.Body = body
	resp, err = a.basic(r, note)
	if err == nil && resp.StatusCode != http.StatusUnauthorized {
		a.mode.Store(autoBasic)
	}
	return resp, err
}

// observe sends r through base and notes the schemes a 401 offers.
func (a *authTransport) observe(r *http.Request, note *authNote) (*http.Response, error) {
	resp, err := a.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		note.offered = schemes(resp.Header)
	}
	return resp, err
}

// observer sits under go-ntlmssp and notes what goes out and comes back.
type observer struct {
	base    http.RoundTripper
	note    *authNote
	sawNTLM *bool
}

func (o *observer) RoundTrip(r *http.Request) (*http.Response, error) {
	if s, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); s == "NTLM" || s == "Negotiate" {
		o.note.tried = s
		if o.sawNTLM != nil {
			*o.sawNTLM = true
		}
	}
	resp, err := o.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		o.note.offered = schemes(resp.Header)
	}
	return resp, err
}

// schemes lists the schemes of WWW-Authenticate challenges, "NTLM, Basic".
func schemes(h http.Header) string {
	var out []string
	for _, v := range h.Values("Www-Authenticate") {
		// One header may hold several challenges; a scheme is a token that
		// starts the value or follows a comma and has no "=" after it.
		for part := range strings.SplitSeq(v, ",") {
			f := strings.Fields(part)
			if len(f) == 0 || strings.Contains(f[0], "=") {
				continue
			}
			out = append(out, f[0])
		}
	}
	return excerpt(strings.Join(out, ", "))
}

func offers(h http.Header, scheme string) bool {
	for s := range strings.SplitSeq(schemes(h), ", ") {
		if strings.EqualFold(s, scheme) {
			return true
		}
	}
	return false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
