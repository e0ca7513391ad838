// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// account is a login: a mailbox owner or the service account.
type account struct {
	login    string // as configured
	password string
	mbox     *mailbox // nil for the service account
	service  bool
}

// token is a registered OAuth access token.
type token struct {
	acct   *account
	expiry time.Time
}

// principal is who a request authenticated as, and how.
type principal struct {
	acct   *account
	scheme string // "Basic", "NTLM" or "Bearer"
}

// connState is what the fake knows about one TCP connection: NTLM authenticates the
// connection rather than each request.
type connState struct {
	raw net.Conn // the TCP connection (below TLS), for cutting it abruptly

	mu        sync.Mutex
	challenge []byte   // server challenge of a pending NTLM handshake
	ntlmAcct  *account // set once a handshake succeeded
}

// cut closes the TCP connection abruptly (below TLS: no close_notify).
func (cs *connState) cut() {
	if cs.raw != nil {
		_ = cs.raw.Close()
	}
}

func stateOf(r *http.Request) *connState {
	cs, _ := r.Context().Value(ctxKey{}).(*connState)
	if cs == nil {
		cs = &connState{} // the handler mounted elsewhere: connections cannot be cut
	}
	return cs
}

// loginAliases lists the lower-case names a login is known by. Windows accepts a
// user as DOMAIN\user and as user@domain; the fake maps one form to the other
// literally (DOMAIN\user <-> user@domain), and a UPN user@dns.suffix also to
// DNS\user (first label of the suffix, as NetBIOS domains usually are). The mailbox's
// SMTP address is always a login too.
func loginAliases(login, smtp string) []string {
	var out []string
	add := func(s string) {
		s = strings.ToLower(s)
		for _, o := range out {
			if o == s {
				return
			}
		}
		if s != "" {
			out = append(out, s)
		}
	}
	add(login)
	add(smtp)
	if dom, user, ok := strings.Cut(login, `\`); ok {
		add(user + "@" + dom)
	} else if user, dom, ok := strings.Cut(login, "@"); ok {
		add(dom + `\` + user)
		if first, _, ok := strings.Cut(dom, "."); ok {
			add(first + `\` + user)
		}
	}
	return out
}

// authenticate checks the request's credentials. On failure it has answered 401
// (or the NTLM challenge) and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	cs := stateOf(r)
	hdr := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(hdr, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case hdr == "":
		cs.mu.Lock()
		a := cs.ntlmAcct
		cs.mu.Unlock()
		if a != nil {
			return principal{acct: a, scheme: "NTLM"}, true
		}
		s.unauthorized(w, r, "", "")
	case strings.EqualFold(scheme, "Basic") && s.opts.Auth&AuthBasic != 0:
		user, pass, ok := r.BasicAuth()
		if ok {
			if a := s.checkPassword(user, pass); a != nil {
				return principal{acct: a, scheme: "Basic"}, true
			}
		}
		s.logf("ewsfake: basic authentication failed for %q", user)
		s.unauthorized(w, r, "", "")
	case (strings.EqualFold(scheme, "NTLM") || strings.EqualFold(scheme, "Negotiate")) && s.opts.Auth&AuthNTLM != 0:
		return s.ntlmStep(w, r, cs, scheme, cred)
	case strings.EqualFold(scheme, "Bearer") && s.opts.Auth&AuthBearer != 0:
		a, diag := s.checkToken(cred)
		if a != nil {
			return principal{acct: a, scheme: "Bearer"}, true
		}
		s.logf("ewsfake: bearer token rejected: %s", diag)
		s.unauthorized(w, r, `error="invalid_token"`, diag)
	default:
		s.unauthorized(w, r, "", "")
	}
	return principal{}, false
}

func (s *Server) checkPassword(user, pass string) *account {
	s.mu.Lock()
	a := s.logins[strings.ToLower(user)]
	s.mu.Unlock()
	if a == nil || subtle.ConstantTimeCompare([]byte(a.password), []byte(pass)) != 1 {
		return nil
	}
	return a
}

func (s *Server) checkToken(tok string) (*account, string) {
	s.mu.Lock()
	t, ok := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !ok:
		return nil, `2000001;reason="The token is invalid or was not issued for this resource.";error_category="invalid_token"`
	case !time.Now().Before(t.expiry):
		return nil, `2000008;reason="The token has expired.";error_category="invalid_token"`
	}
	return t.acct, ""
}

// unauthorized answers 401 with one WWW-Authenticate header per offered scheme, in
// the order IIS lists them. bearerErr and diag describe a rejected OAuth token.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, bearerErr, diag string) {
	drain(r)
	h := w.Header()
	if s.opts.Auth&AuthBearer != 0 {
		v := `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"`
		if bearerErr != "" {
			v += ", " + bearerErr
		}
		h.Add("WWW-Authenticate", v)
		if diag != "" {
			h.Set("x-ms-diagnostics", diag)
		}
	}
	if s.opts.Auth&AuthNTLM != 0 {
		h.Add("WWW-Authenticate", "Negotiate")
		h.Add("WWW-Authenticate", "NTLM")
	}
	if s.opts.Auth&AuthBasic != 0 {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		h.Add("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", host))
	}
	s.count("unauthorized")
	h.Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, "401 - Unauthorized: Access is denied due to invalid credentials.")
}

// ntlmStep runs one leg of the NTLM handshake: NEGOTIATE gets a 401 carrying the
// CHALLENGE, AUTHENTICATE is verified and marks the connection authenticated.
func (s *Server) ntlmStep(w http.ResponseWriter, r *http.Request, cs *connState, scheme, cred string) (principal, bool) {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil || len(raw) < 12 || string(raw[:8]) != ntlmSignature {
		s.logf("ewsfake: %s token is not NTLMSSP (Kerberos/SPNEGO is not supported)", scheme)
		s.unauthorized(w, r, "", "")
		return principal{}, false
	}
	switch le32(raw[8:]) {
	case 1:
		challenge, msg := newChallenge(raw)
		cs.mu.Lock()
		cs.challenge = challenge
		cs.ntlmAcct = nil
		cs.mu.Unlock()
		drain(r)
		s.count("unauthorized")
		w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(msg))
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusUnauthorized)
		return principal{}, false
	case 3:
		cs.mu.Lock()
		challenge := cs.challenge
		cs.challenge = nil
		cs.mu.Unlock()
		am, err := parseAuthenticate(raw)
		if err == nil && challenge == nil {
			err = errNoChallenge
		}
		var a *account
		if err == nil {
			a, err = s.verifyNTLM(am, challenge)
		}
		if err != nil {
			s.logf("ewsfake: NTLM authentication failed for %q\\%q: %v", am.domain, am.user, err)
			s.unauthorized(w, r, "", "")
			return principal{}, false
		}
		cs.mu.Lock()
		cs.ntlmAcct = a
		cs.mu.Unlock()
		return principal{acct: a, scheme: "NTLM"}, true
	}
	s.unauthorized(w, r, "", "")
	return principal{}, false
}

// verifyNTLM finds the account the AUTHENTICATE message names and checks its NTLMv2
// response against that account's password.
func (s *Server) verifyNTLM(am authenticateMsg, challenge []byte) (*account, error) {
	var cands []string
	if am.domain != "" {
		cands = append(cands, am.domain+`\`+am.user, am.user+"@"+am.domain)
	}
	cands = append(cands, am.user)
	s.mu.Lock()
	var a *account
	for _, c := range cands {
		if a = s.logins[strings.ToLower(c)]; a != nil {
			break
		}
	}
	s.mu.Unlock()
	if a == nil {
		return nil, errNTLMUnknownUser
	}
	if !verifyNTLMv2(a.password, am, challenge) {
		return nil, errNTLMBadResponse
	}
	return a, nil
}

// drain reads what is left of a request body we answer without reading it, so that
// the connection stays usable: NTLM's second leg must arrive on the same connection.
func drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
}
