// SPDX-License-Identifier: Apache-2.0

// Package lockout keeps the service from locking users out of their mail
// accounts. Directory services lock an account after a few failed logins in a
// window (Active Directory: e.g. 5 in 30 minutes), and a listener that
// retries a wrong password every reconnect, every history load and every
// recreate Creatio's failover job sends each minute would trip that.
//
// After the mail server rejects a mailbox's credentials, those exact
// credentials are held: the next try is allowed only after a back-off that
// starts at Min and doubles up to Max. Re-registering the mailbox with the
// same credentials does not reset it; different credentials (a new password
// or token) are tried at once. A successful login clears the hold.
//
// Credentials are compared by an HMAC under a per-process random key, so the
// guard keeps no password and no unkeyed hash of one.
package lockout

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for New.
const (
	DefaultMin = 5 * time.Minute
	DefaultMax = time.Hour
)

// Guard remembers rejected credentials per mailbox. Its methods are safe for
// concurrent use; a nil *Guard holds nothing.
type Guard struct {
	min, max time.Duration
	now      func() time.Time
	key      [32]byte
	held     prometheus.Gauge

	mu    sync.Mutex
	holds map[mail.MailboxID]*hold
}

type hold struct {
	creds    [sha256.Size]byte
	failures int
	until    time.Time
	reason   string
}

// Options configures a Guard; the zero value uses the defaults.
type Options struct {
	Min, Max   time.Duration
	Now        func() time.Time // default time.Now
	Registerer prometheus.Registerer
}

// New returns a Guard; it does no I/O.
func New(o Options) *Guard {
	if o.Min <= 0 {
		o.Min = DefaultMin
	}
	if o.Max < o.Min {
		o.Max = max(DefaultMax, o.Min)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Guard{min: o.Min, max: o.Max, now: o.Now, holds: make(map[mail.MailboxID]*hold),
		held: promauto.With(o.Registerer).NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_auth_held_mailboxes",
			Help: "Mailboxes whose rejected credentials are not retried before their back-off ends (account lock-out protection).",
		})}
	_, _ = rand.Read(g.key[:])
	return g
}

// fingerprint identifies what a login presents to which server.
func (g *Guard) fingerprint(mb *mail.Mailbox) [sha256.Size]byte {
	h := hmac.New(sha256.New, g.key[:])
	for _, s := range []string{mb.Host, strconv.Itoa(mb.Port), mb.UserName, mb.Password, mb.AccessToken, strconv.FormatBool(mb.UseOAuth)} {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Check reports whether mb's credentials are held: rejected before, with the
// back-off not over. until is when they may be tried again and reason the
// server's last rejection.
func (g *Guard) Check(mb *mail.Mailbox) (until time.Time, reason string, held bool) {
	if g == nil {
		return time.Time{}, "", false
	}
	fp := g.fingerprint(mb)
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.holds[mb.ID]
	if h == nil || h.creds != fp || !g.now().Before(h.until) {
		return time.Time{}, "", false
	}
	return h.until, h.reason, true
}

// Failed records that the server rejected mb's credentials with reason and
// returns when they may be tried again.
func (g *Guard) Failed(mb *mail.Mailbox, reason string) time.Time {
	if g == nil {
		return time.Time{}
	}
	fp := g.fingerprint(mb)
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.holds[mb.ID]
	if h == nil {
		h = &hold{}
		g.holds[mb.ID] = h
		g.held.Inc()
	}
	if h.creds != fp { // new credentials, rejected too: start over
		h.creds, h.failures = fp, 0
	}
	h.failures++
	wait := g.min
	for i := 1; i < h.failures && wait < g.max; i++ {
		wait *= 2
	}
	h.until, h.reason = g.now().Add(min(wait, g.max)), reason
	return h.until
}

// Succeeded clears mb's hold after a successful login.
func (g *Guard) Succeeded(mb *mail.Mailbox) { g.Forget(mb.ID) }

// Forget drops the hold of a mailbox (closed).
func (g *Guard) Forget(id mail.MailboxID) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.holds[id]; ok {
		delete(g.holds, id)
		g.held.Dec()
	}
}
