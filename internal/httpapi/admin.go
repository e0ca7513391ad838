// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// The admin token (EL_ADMIN_TOKEN) guards what shows more than Creatio's own
// API does: the dashboard (mailbox addresses), the cluster view and pprof.
//
// A request is let in by
//   - "Authorization: Bearer <token>" (scripts, curl), or
//   - the adminCookie (a digest of the token), which a dashboard request
//     with "?token=<token>" sets (HttpOnly, SameSite=Strict, Secure over TLS,
//     scoped to the dashboard's path) before it is redirected to the same
//     page without the token, so the token stays out of the address bar, the
//     history and Referer headers.
//
// Tokens are compared in constant time (as SHA-256 digests, so their lengths
// do not show either) and never logged: the access log has the path only.

const adminCookie = "el_admin"

// ErrUnauthorized refuses a request without the admin token; it maps to 401.
var ErrUnauthorized = errors.New("admin token required: send \"Authorization: Bearer <EL_ADMIN_TOKEN>\", or open the dashboard as /ui/?token=<EL_ADMIN_TOKEN>")

var errBadToken = errors.New("wrong admin token (EL_ADMIN_TOKEN)")

// adminError is a 401 answer.
type adminError struct{ err error }

func (e adminError) Error() string { return e.err.Error() }
func (e adminError) Unwrap() error { return ErrUnauthorized }

// UserMessage is the 401's text.
func (e adminError) UserMessage() string { return e.err.Error() }

// tokenEqual compares a presented token with the configured one in constant
// time.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// cookieValue is what the dashboard's cookie holds for token: a digest, so
// that the cookie (in the browser's profile) is not the token itself and any
// token fits a cookie's character set.
func cookieValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("emaillistener dashboard cookie"))
	return hex.EncodeToString(m.Sum(nil))
}

// authorize checks the admin token of r; nil when none is configured. It
// sets the WWW-Authenticate header of the 401 it asks for.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) error {
	want := a.opts.AdminToken
	if want == "" {
		return nil
	}
	presented := false
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			presented = true
			if tokenEqual(strings.TrimSpace(tok), want) {
				return nil
			}
		}
	}
	if c, err := r.Cookie(adminCookie); err == nil && c.Value != "" {
		presented = true
		if tokenEqual(c.Value, cookieValue(want)) {
			return nil
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="emaillistener"`)
	if presented {
		return adminError{errBadToken}
	}
	return adminError{ErrUnauthorized}
}

// requireAdmin wraps h with authorize, for handlers outside handle (pprof).
func (a *API) requireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.authorize(w, r); err != nil {
			a.refused.WithLabelValues("unauthorized").Inc()
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ui serves the dashboard under /ui/ behind the admin token. A page request
// carrying ?token= trades it for the cookie and is sent back without it.
func (a *API) ui(w http.ResponseWriter, r *http.Request) error {
	if tok := r.URL.Query().Get("token"); tok != "" && a.opts.AdminToken != "" {
		if !tokenEqual(tok, a.opts.AdminToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="emaillistener"`)
			return adminError{errBadToken}
		}
		http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: cookieValue(tok), HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")})
		// No Path: the browser scopes the cookie to the directory of the page
		// it asked for (/ui or <prefix>/ui, in the case it was typed).
		q := r.URL.Query()
		q.Del("token")
		last := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		loc := "./" + (&url.URL{Path: last}).EscapedPath()
		if len(q) > 0 {
			loc += "?" + q.Encode()
		}
		// Relative, so that it keeps the path prefix and case the browser
		// used (http.Redirect would rebuild it from the routed path).
		w.Header().Set("Location", loc)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	if err := a.authorize(w, r); err != nil {
		return err
	}
	http.StripPrefix("/ui", a.opts.UI).ServeHTTP(w, r)
	return nil
}

// admin guards h with the admin token.
func (a *API) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := a.authorize(w, r); err != nil {
			return err
		}
		return h(w, r)
	}
}
