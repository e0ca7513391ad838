// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Graph's resource identifiers: an access token for Graph carries one of them as
// its audience, and the client-credentials scope is one of them plus "/.default".
const (
	graphResource = "https://graph.microsoft.com"
	graphAppID    = "00000003-0000-0000-c000-000000000000"
)

// claims are the access token claims the fake issues and checks, named as in
// Entra ID's v1.0 tokens for Graph.
type claims struct {
	Aud        string   `json:"aud"`
	Iss        string   `json:"iss"`
	Iat        int64    `json:"iat"`
	Nbf        int64    `json:"nbf"`
	Exp        int64    `json:"exp"`
	AppID      string   `json:"appid"`
	AppName    string   `json:"app_displayname,omitempty"`
	IDType     string   `json:"idtyp"`
	OID        string   `json:"oid,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Scp        string   `json:"scp,omitempty"`
	Sub        string   `json:"sub"`
	Tid        string   `json:"tid"`
	UPN        string   `json:"upn,omitempty"`
	UniqueName string   `json:"unique_name,omitempty"`
	UTI        string   `json:"uti"`
	Ver        string   `json:"ver"`
}

// principal is an authenticated caller.
type principal struct {
	app    bool
	perms  map[string]bool // lower-case roles or scopes
	userID string          // delegated: the signed-in user's object id
}

func (p *principal) hasAny(perms []string) bool {
	for _, x := range perms {
		if p.perms[strings.ToLower(x)] {
			return true
		}
	}
	return false
}

// tokenHeader is the JOSE header of the fake's tokens. They are HMAC-signed with
// the server's key rather than RS256 with Entra ID's: clients must treat Graph
// tokens as opaque anyway, and the fake checks them itself.
var tokenHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"graphfake"}`))

// mint signs claims into a JWT-shaped token.
func (s *Server) mint(c claims) string {
	payload, _ := json.Marshal(c)
	signing := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + base64.RawURLEncoding.EncodeToString(s.ids.mac([]byte(signing)))
}

func (s *Server) baseClaims(aud string, lifetime time.Duration) claims {
	now := s.opts.Now()
	return claims{
		Aud:   aud,
		Iss:   "https://sts.windows.net/" + s.opts.Tenant + "/",
		Iat:   now.Unix(),
		Nbf:   now.Unix(),
		Exp:   now.Add(lifetime).Unix(),
		AppID: s.opts.ClientID,
		Tid:   s.opts.Tenant,
		UTI:   strings.ReplaceAll(newGUID(), "-", "")[:22],
		Ver:   "1.0",
	}
}

// DelegatedToken returns an access token on behalf of a user (as if obtained with
// the authorization code flow) with the given delegated scopes, e.g.
// "Mail.ReadWrite"; lifetime zero means Options.TokenLifetime. Graph accepts it
// for that user's mailbox (and /me) only.
func (s *Server) DelegatedToken(upn string, scopes []string, lifetime time.Duration) string {
	if lifetime <= 0 {
		lifetime = s.opts.TokenLifetime
	}
	s.mu.Lock()
	oid := ""
	if mb := s.byName[strings.ToLower(upn)]; mb != nil {
		oid = mb.id
	}
	s.mu.Unlock()
	c := s.baseClaims(graphResource, lifetime)
	c.IDType, c.OID, c.Sub = "user", oid, oid
	c.Scp = strings.Join(scopes, " ")
	c.UPN, c.UniqueName = upn, upn
	c.AppName = "graphfake client"
	return s.mint(c)
}

// appToken is what the token endpoint issues for the client-credentials grant.
func (s *Server) appToken(aud string) string {
	c := s.baseClaims(aud, s.opts.TokenLifetime)
	c.IDType, c.OID, c.Sub = "app", s.spID, s.spID
	c.Roles = s.opts.Roles
	c.AppName = "graphfake client"
	return s.mint(c)
}

// authenticate checks the bearer token of an API request. Graph's answers: 401
// InvalidAuthenticationToken with a WWW-Authenticate challenge for a missing,
// malformed, forged, foreign or expired token.
func (s *Server) authenticate(rc *reqCtx) (*principal, *apiResponse) {
	deny := func(msg string) (*principal, *apiResponse) {
		s.logf("graphfake: %s %s: 401 %s", rc.method, rc.path, msg)
		r := rc.fail(http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		r.header.Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s/common/oauth2/authorize", client_id="%s"`, s.baseURL, graphAppID))
		return nil, r
	}
	auth := rc.header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return deny("Access token is empty.")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return deny("JWT is not well formed: it must have three dot-separated parts.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.ids.mac([]byte(parts[0]+"."+parts[1]))) {
		return deny("Access token validation failure. Invalid signature.")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c claims
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return deny("JWT is not well formed.")
	}
	if c.Aud != graphResource && c.Aud != graphResource+"/" && c.Aud != graphAppID {
		return deny("Access token validation failure. Invalid audience.")
	}
	if !strings.EqualFold(c.Tid, s.opts.Tenant) {
		return deny("Access token validation failure. Invalid issuer.")
	}
	now := s.opts.Now().Unix()
	if now >= c.Exp {
		return deny("Lifetime validation failed, the token is expired.")
	}
	if now < c.Nbf-300 { // Entra ID allows five minutes of clock skew
		return deny("Lifetime validation failed, the token is not yet valid.")
	}
	p := &principal{app: c.IDType == "app", perms: map[string]bool{}}
	for _, r := range c.Roles {
		p.perms[strings.ToLower(r)] = true
	}
	for _, sc := range strings.Fields(c.Scp) {
		p.perms[strings.ToLower(sc)] = true
	}
	if !p.app {
		if c.OID == "" {
			return deny("Access token validation failure: the user does not exist in the tenant.")
		}
		p.userID = c.OID
	}
	return p, nil
}

// isTokenPath tells whether p is /{tenant}/oauth2/v2.0/token.
func isTokenPath(p string) bool {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	return len(parts) == 4 && parts[0] != "" && strings.EqualFold(parts[1], "oauth2") &&
		strings.EqualFold(parts[2], "v2.0") && strings.EqualFold(parts[3], "token")
}

// serveToken is Entra ID's token endpoint for the client-credentials grant
// (client secret in the form or in HTTP Basic authentication, as
// golang.org/x/oauth2 may send it). Errors use Entra ID's JSON error body with its
// AADSTS codes.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.tokenRequests++
	s.mu.Unlock()
	tenant := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
	if r.Method != http.MethodPost {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return
	}
	if !strings.EqualFold(tenant, s.opts.Tenant) && !strings.EqualFold(tenant, s.opts.TenantDomain) {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, min(s.opts.MaxRequestBytes, 64<<10))
	if err := r.ParseForm(); err != nil {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	missing := func(p string) {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p))
	}
	grant := r.PostForm.Get("grant_type")
	switch {
	case grant == "":
		missing("grant_type")
		return
	case grant != "client_credentials":
		s.aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant))
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: Basic credentials are form-encoded first.
		if v, err := url.QueryUnescape(u); err == nil {
			u = v
		}
		if v, err := url.QueryUnescape(p); err == nil {
			p = v
		}
		id, secret = u, p
	}
	if id == "" {
		missing("client_id")
		return
	}
	if !strings.EqualFold(id, s.opts.ClientID) {
		s.aadError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", id, s.opts.TenantDomain))
		return
	}
	if secret == "" {
		s.aadError(w, http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	}
	if !hmac.Equal([]byte(secret), []byte(s.opts.ClientSecret)) {
		s.aadError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.opts.ClientID))
		return
	}
	scope := strings.TrimSpace(r.PostForm.Get("scope"))
	if scope == "" {
		missing("scope")
		return
	}
	resource, ok := strings.CutSuffix(scope, "/.default")
	if !ok || strings.ContainsAny(resource, " ") {
		s.aadError(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return
	}
	// A token for another resource is issued as Entra ID would, for that
	// resource; Graph then refuses its audience.
	aud := resource
	if strings.EqualFold(resource, graphResource) || resource == graphAppID {
		aud = graphResource
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	secs := int64(s.opts.TokenLifetime/time.Second) - 1
	_ = json.NewEncoder(w).Encode(obj{
		{"token_type", "Bearer"},
		{"expires_in", secs},
		{"ext_expires_in", secs},
		{"access_token", s.appToken(aud)},
	})
}

// aadError writes Entra ID's error body.
func (s *Server) aadError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	s.logf("graphfake: token endpoint: %d %s AADSTS%d", status, code, aadsts)
	now := time.Now().UTC()
	trace, corr := newGUID(), newGUID()
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(obj{
		{"error", code},
		{"error_description", fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, corr, now.Format("2006-01-02 15:04:05Z"))},
		{"error_codes", []int{aadsts}},
		{"timestamp", now.Format("2006-01-02 15:04:05Z")},
		{"trace_id", trace},
		{"correlation_id", corr},
		{"error_uri", fmt.Sprintf("%s/error?code=%d", s.baseURL, aadsts)},
	})
}
