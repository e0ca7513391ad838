// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
)

// backend is a simulated mailbox server. Front ends route each request to one; a
// subscription exists only on the backend that created it, which is why streaming
// clients must keep affinity.
type backend struct {
	fqdn   string
	cookie string // value of X-BackEndOverrideCookie routing to this backend
	group  string // Autodiscover GroupingInformation
}

func newBackends(n int) []backend {
	out := make([]backend, n)
	for i := range out {
		fqdn := fmt.Sprintf("mbx%02d.ewsfake.test", i+1)
		h := fnv.New32a()
		h.Write([]byte(fqdn))
		out[i] = backend{
			fqdn: fqdn,
			// Exchange's value is "<backend FQDN>~<number>"; the number is opaque to
			// clients.
			cookie: fqdn + "~" + strconv.FormatUint(uint64(h.Sum32()), 10),
			group:  fmt.Sprintf("EWSFAKE-DAG%02d", i+1),
		}
	}
	return out
}

// homeBackend spreads mailboxes over backends by a hash of the address.
func homeBackend(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// route picks the backend for a request: a valid X-BackEndOverrideCookie (sent as a
// cookie or, as some clients do, as a request header) wins; else the home of the
// X-AnchorMailbox; else the home of the mailbox acted on. It also says whether the
// cookie decided. Callers hold s.mu.
func (s *Server) route(r *http.Request, c *caller) (int, bool) {
	vals := []string{r.Header.Get("X-BackEndOverrideCookie")}
	if ck, err := r.Cookie("X-BackEndOverrideCookie"); err == nil {
		vals = append(vals, ck.Value)
	}
	for _, v := range vals {
		fqdn, _, _ := strings.Cut(v, "~")
		for i, b := range s.backends {
			if fqdn != "" && strings.EqualFold(fqdn, b.fqdn) {
				return i, true
			}
		}
	}
	if a := r.Header.Get("X-AnchorMailbox"); a != "" {
		if mb := s.byAddr[strings.ToLower(a)]; mb != nil {
			return mb.backend, false
		}
	}
	if c.mbox != nil {
		return c.mbox.backend, false
	}
	return 0, false
}

// setAffinityCookie answers a request that asked for server affinity with the
// cookie naming its backend, the way Exchange does on Subscribe.
func (s *Server) setAffinityCookie(c *caller) {
	if !c.affinity || c.hadCookie {
		return
	}
	c.w.Header().Add("Set-Cookie", "X-BackEndOverrideCookie="+s.backends[c.backend].cookie+"; path=/; secure; HttpOnly")
}

// BackendOf returns the FQDN of a mailbox's home backend ("" for an unknown mailbox).
func (s *Server) BackendOf(smtp string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return ""
	}
	return s.backends[mb.backend].fqdn
}

// AffinityCookie returns the X-BackEndOverrideCookie value that routes to the home
// backend of a mailbox ("" for an unknown mailbox).
func (s *Server) AffinityCookie(smtp string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return ""
	}
	return s.backends[mb.backend].cookie
}
