// SPDX-License-Identifier: Apache-2.0

package nativeapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// Tokens are the accepted bearer tokens, kept as SHA-256 hashes only, each
// with a name (for the logs) and a scope.
type Tokens struct {
	names  []string
	scopes []Scope
	hashes [][sha256.Size]byte
}

// Scope is what a token may do: read (GET) or everything.
type Scope string

const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write" // reads too
)

// ParseTokens reads EL_API_TOKENS: comma-separated entries, each
// "name:token", "name:token:read" (or ":write", the default) or a bare token
// (named token-<n>). Empty spec: no tokens (the API is disabled). The error
// never quotes a token.
func ParseTokens(spec string) (*Tokens, error) {
	t := &Tokens{}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		scope := ScopeWrite
		if head, sc, ok := strings.Cut(entry, ":"); ok {
			if rest, last, ok := strings.Cut(sc, ":"); ok {
				switch Scope(strings.TrimSpace(last)) {
				case ScopeRead, ScopeWrite:
					scope, entry = Scope(strings.TrimSpace(last)), head+":"+rest
				default:
					return nil, fmt.Errorf("EL_API_TOKENS: entry %d has an unknown scope (read or write)", i+1)
				}
			}
		}
		name, tok, ok := strings.Cut(entry, ":")
		if !ok {
			name, tok = fmt.Sprintf("token-%d", i+1), entry
		}
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		if name == "" || tok == "" {
			return nil, fmt.Errorf("EL_API_TOKENS: entry %d has an empty name or token", i+1)
		}
		if len(tok) < minTokenLen {
			return nil, fmt.Errorf("EL_API_TOKENS: the token of entry %d (%s) is shorter than %d characters", i+1, name, minTokenLen)
		}
		t.names = append(t.names, name)
		t.scopes = append(t.scopes, scope)
		t.hashes = append(t.hashes, sha256.Sum256([]byte(tok)))
	}
	return t, nil
}

// minTokenLen refuses tokens too short to resist guessing.
const minTokenLen = 16

// Enabled reports whether any token is configured.
func (t *Tokens) Enabled() bool { return t != nil && len(t.hashes) > 0 }

var errNoToken = errors.New("missing or malformed Authorization: Bearer header")

// Check returns the name and scope of the token that header
// ("Bearer <token>") carries. Every configured hash is compared, in constant
// time.
func (t *Tokens) Check(header string) (string, Scope, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || !t.Enabled() {
		return "", "", false
	}
	h := sha256.Sum256([]byte(tok))
	found := -1
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", "", false
	}
	return t.names[found], t.scopes[found], true
}
