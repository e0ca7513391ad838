// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"log/slog"
	"sync"
	"time"
)

// Rechecks decides, per IMAP server, whether sessions re-check after
// activity (see recheckAfter). Re-checks bound lost pushes, but each wakes
// the connection, and on a Dovecot with imap-hibernate each wake-up is a
// hibernation round trip of server CPU: three after every new mail
// saturated a 2-core Dovecot at 50 mails/s over 1,000 mailboxes (p50 3.6 s
// instead of 19 ms without them, elbench webhooks), and a saturated Dovecot
// failed hibernations and answered some IDLEs twice, which ended sessions.
// So a server that takes longer than slowDone to end most IDLEs (the share
// of slow ones, averaged over the last ~20, above half) is taken as busy,
// and its sessions skip re-checks for busyHold: a lost push is then found at
// the next activity or IDLE round instead, while the server gets back the
// CPU it needs to push at all. A slow answer now and then (a lighter load)
// keeps the re-checks. One value is shared by a node's sessions
// (Options.Rechecks); it is safe for concurrent use.
type Rechecks struct {
	log     *slog.Logger
	mu      sync.Mutex
	servers map[string]*pace // by server address
}

type pace struct {
	slow float64   // moving share of slow IDLE ends
	busy time.Time // re-checks skipped until
}

const (
	// slowDone: Dovecot ends an IDLE in tens of milliseconds, a hibernated
	// one in up to ~600 ms (it is moved back to an imap process first), a
	// saturated Dovecot in several seconds.
	slowDone  = 2 * time.Second
	slowAlpha = 0.05 // weight of one answer in the moving share
	slowShare = 0.5
	busyHold  = time.Minute
)

// NewRechecks returns a decider with every server taken as not busy; log
// (nil: none) gets a line when a server's re-checks pause.
func NewRechecks(log *slog.Logger) *Rechecks {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rechecks{log: log, servers: make(map[string]*pace)}
}

// observe records how long server took to end an IDLE.
func (r *Rechecks) observe(server string, done time.Duration, now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.servers[server]
	if p == nil {
		if done < slowDone {
			return // the common case: a quick server needs no entry
		}
		p = &pace{}
		r.servers[server] = p
	}
	x := 0.0
	if done >= slowDone {
		x = 1
	}
	p.slow += slowAlpha * (x - p.slow)
	switch {
	case x == 1 && p.slow > slowShare: // a quick answer does not extend the hold
		if !now.Before(p.busy) {
			r.log.Info("IMAP server busy: re-checks after new mail paused", "server", server,
				"why", "most IDLEs take over "+slowDone.String()+" to end", "for", busyHold.String())
		}
		p.busy = now.Add(busyHold)
	case p.slow < 0.01 && now.After(p.busy):
		delete(r.servers, server)
	}
}

// chain returns the re-check offsets for a session on server: none while it
// is busy, else recheckAfter.
func (r *Rechecks) chain(server string, now time.Time) []time.Duration {
	if r == nil {
		return recheckAfter
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.servers[server]; p != nil && now.Before(p.busy) {
		return nil
	}
	return recheckAfter
}
