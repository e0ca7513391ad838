// SPDX-License-Identifier: Apache-2.0

package nativeapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Tokens are the accepted bearer tokens, kept as SHA-256 hashes only, each
// with what it grants.
type Tokens struct {
	grants []Grant
	hashes [][sha256.Size]byte
}

// Grant is what a token may do: its name (for the logs), its scope, and
// the accounts it reaches — those whose id starts with Prefix ("": all).
// A prefix gives each tenant of a shared service its own token: the others'
// accounts do not exist for it.
type Grant struct {
	Name   string
	Scope  Scope
	Prefix string
}

// reaches reports whether the grant covers account id.
func (g Grant) reaches(id string) bool { return strings.HasPrefix(id, g.Prefix) }

// Scope is what a token may do: read (GET) or everything.
type Scope string

const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write" // reads too
)

// ParseTokens reads EL_API_TOKENS: comma-separated entries, each a bare
// token (named token-<n>) or "name:token[:scope[:prefix]]" — scope read or
// write (the default), prefix the start of the account ids the token
// reaches (default: all). Empty spec: no tokens (the API is disabled). The
// error never quotes a token.
func ParseTokens(spec string) (*Tokens, error) {
	t := &Tokens{}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		for j := range parts {
			parts[j] = strings.TrimSpace(parts[j])
		}
		g := Grant{Name: fmt.Sprintf("token-%d", i+1), Scope: ScopeWrite}
		var tok string
		switch len(parts) {
		case 1:
			tok = parts[0]
		case 2, 3, 4:
			g.Name, tok = parts[0], parts[1]
		default:
			return nil, fmt.Errorf("EL_API_TOKENS: entry %d has more than name:token:scope:prefix", i+1)
		}
		if len(parts) >= 3 && parts[2] != "" {
			switch g.Scope = Scope(parts[2]); g.Scope {
			case ScopeRead, ScopeWrite:
			default:
				return nil, fmt.Errorf("EL_API_TOKENS: entry %d has an unknown scope (read or write)", i+1)
			}
		}
		if len(parts) == 4 {
			if g.Prefix = strings.ToLower(parts[3]); !prefixPattern.MatchString(g.Prefix) {
				return nil, fmt.Errorf("EL_API_TOKENS: the account prefix of entry %d: 1 to 27 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", i+1)
			}
		}
		if g.Name == "" || tok == "" {
			return nil, fmt.Errorf("EL_API_TOKENS: entry %d has an empty name or token", i+1)
		}
		if len(tok) < minTokenLen {
			return nil, fmt.Errorf("EL_API_TOKENS: the token of entry %d (%s) is shorter than %d characters", i+1, g.Name, minTokenLen)
		}
		t.grants = append(t.grants, g)
		t.hashes = append(t.hashes, sha256.Sum256([]byte(tok)))
	}
	return t, nil
}

// prefixPattern bounds an account prefix: the start of an account id, short
// enough that it and a UUID (the id of an account created without one) fit
// an id's 64 characters.
var prefixPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,26}$`)

// minTokenLen refuses tokens too short to resist guessing.
const minTokenLen = 16

// Enabled reports whether any token is configured.
func (t *Tokens) Enabled() bool { return t != nil && len(t.hashes) > 0 }

var errNoToken = errors.New("missing or malformed Authorization: Bearer header")

// Check returns the grant of the token that header ("Bearer <token>")
// carries. Every configured hash is compared, in constant time.
func (t *Tokens) Check(header string) (Grant, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Grant{}, false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || !t.Enabled() {
		return Grant{}, false
	}
	h := sha256.Sum256([]byte(tok))
	found := -1
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Grant{}, false
	}
	return t.grants[found], true
}
