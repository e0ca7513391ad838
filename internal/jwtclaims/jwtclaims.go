// SPDX-License-Identifier: Apache-2.0

// Package jwtclaims reads the claims of an OAuth access token that is a JWT,
// without verifying it: the service only needs hints (when the token
// expires, which API it is for, which scopes it carries) and leaves
// verification to the server that receives the token. Opaque tokens (Gmail)
// have no claims.
package jwtclaims

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// maxToken bounds what is decoded: real access tokens are a few KiB.
const maxToken = 16 << 10

// Claims are the claims the service looks at.
type Claims struct {
	Expires  time.Time // exp; zero when absent
	Audience []string  // aud (a string or a list in the token)
	Scopes   []string  // scp of a delegated token, space-separated in the token
	Roles    []string  // roles of an application token
	Tenant   string    // tid
	User     string    // upn, else preferred_username, else unique_name
}

// Parse returns the claims of a JWT; ok is false for anything else.
func Parse(token string) (c Claims, ok bool) {
	if len(token) > maxToken {
		return Claims{}, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, false
	}
	var raw struct {
		Exp      json.Number     `json:"exp"`
		Aud      json.RawMessage `json:"aud"`
		Scp      string          `json:"scp"`
		Roles    []string        `json:"roles"`
		Tid      string          `json:"tid"`
		UPN      string          `json:"upn"`
		Username string          `json:"preferred_username"`
		Unique   string          `json:"unique_name"`
	}
	if json.Unmarshal(payload, &raw) != nil {
		return Claims{}, false
	}
	if secs, err := raw.Exp.Float64(); err == nil && secs > 0 {
		c.Expires = time.Unix(int64(secs), 0)
	}
	var one string
	if json.Unmarshal(raw.Aud, &one) == nil && one != "" {
		c.Audience = []string{one}
	} else {
		_ = json.Unmarshal(raw.Aud, &c.Audience)
	}
	c.Scopes = strings.Fields(raw.Scp)
	c.Roles = raw.Roles
	c.Tenant = raw.Tid
	for _, u := range []string{raw.UPN, raw.Username, raw.Unique} {
		if u != "" {
			c.User = u
			break
		}
	}
	return c, true
}

// HasScope reports whether the token carries scope, compared without the
// resource prefix ("https://outlook.office.com/IMAP.AccessAsUser.All" and
// "IMAP.AccessAsUser.All" are the same) and case-insensitively.
func (c Claims) HasScope(scope string) bool {
	scope = strings.ToLower(scope[strings.LastIndexByte(scope, '/')+1:])
	for _, s := range append(c.Scopes, c.Roles...) {
		if strings.ToLower(s[strings.LastIndexByte(s, '/')+1:]) == scope {
			return true
		}
	}
	return false
}

// For reports whether the token's audience is one of auds (compared
// case-insensitively, a trailing slash ignored).
func (c Claims) For(auds ...string) bool {
	for _, a := range c.Audience {
		a = strings.TrimSuffix(strings.ToLower(a), "/")
		for _, want := range auds {
			if a == strings.TrimSuffix(strings.ToLower(want), "/") {
				return true
			}
		}
	}
	return false
}
