// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// Renewal results of renew.lua, plus failed for a call without a reply.
const (
	renewTaken    = -1
	renewMissing  = 0
	renewOK       = 1
	renewRestored = 2
	renewFailed   = 99
)

var errRoundTimeout = errors.New("lease: renewal round timed out")

// run is the loop goroutine. A panic loses every held lease (nothing would
// renew them or close their Done otherwise) and restarts the loop empty.
func (m *Manager) run(ctx context.Context) {
	defer close(m.loopDone)
	defer m.timer.Stop()
	for m.runSafe(ctx) {
		m.loseAll()
	}
}

func (m *Manager) runSafe(ctx context.Context) (panicked bool) {
	defer m.opts.Panics.Recover(m.log, "lease", &panicked)
	m.loop(ctx)
	return false
}

// loop is the single select of the Manager: actions from callers, and the
// timer, which is always armed for the next renewal round or the earliest
// local deadline, whichever comes first.
func (m *Manager) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-m.actions:
			f()
		case <-m.timer.C():
			m.timer.Reset(m.tick(ctx))
			m.publishStats() // after Reset: a test that saw the round may advance its clock

		}
	}
}

// tick expires overdue leases, runs a renewal round when one is due, and
// returns the wait until the next wake-up.
func (m *Manager) tick(ctx context.Context) time.Duration {
	now := m.opts.Clock.Now()
	m.expire(now)
	if !now.Before(m.nextRound) {
		m.renewRound(ctx, now)
		m.nextRound = now.Add(m.opts.RenewEvery)
		m.expire(m.opts.Clock.Now()) // a slow or failed round may have passed a deadline
	}
	next := m.nextRound
	if d, ok := m.earliestDeadline(); ok && d.Before(next) {
		next = d
	}
	return max(next.Sub(m.opts.Clock.Now()), time.Millisecond)
}

// expire loses the leases whose local deadline passed (or, holding on while
// Redis is unreachable, marks them unconfirmed), and forgets ended ones.
func (m *Manager) expire(now time.Time) {
	var lost, held []mail.MailboxID
	for id, l := range m.held {
		switch {
		case l.Err() != nil:
			delete(m.held, id)
		case l.unconfirmed.Load() || now.Before(l.Deadline()):
		case m.opts.HoldWhileUnreachable:
			// Only a missing answer lets a deadline pass: a rejection loses
			// the lease at once (renewRound).
			l.unconfirmed.Store(true)
			held = append(held, id)
		default:
			m.lose(l, ReasonExpired)
			lost = append(lost, id)
		}
	}
	m.met.held.Set(float64(len(m.held)))
	m.logLost(ReasonExpired, lost)
	if len(held) > 0 {
		slices.Sort(held)
		m.log.Warn("Redis did not answer before the lease deadline; holding on until it does (fencing settles conflicts)",
			"count", len(held), "unconfirmed", m.unconfirmedCount(), "mailboxes", held[:min(len(held), 5)])
	}
}

// earliestDeadline is the first local deadline among confirmed leases.
func (m *Manager) earliestDeadline() (time.Time, bool) {
	var first time.Time
	for _, l := range m.held {
		if l.unconfirmed.Load() {
			continue
		}
		if d := l.Deadline(); first.IsZero() || d.Before(first) {
			first = d
		}
	}
	return first, !first.IsZero()
}

// renewRound renews every held lease in one pipeline. A lease is extended to
// start + TTL - Skew when Redis confirms, lost when Redis rejects it, and kept
// unchanged when there is no answer (its deadline decides later).
func (m *Manager) renewRound(ctx context.Context, start time.Time) {
	m.rounds++
	leases := make([]*Lease, 0, len(m.held))
	for _, l := range m.held {
		leases = append(leases, l)
	}
	if len(leases) == 0 {
		m.lastErr = ""
		m.last = Stats{Rounds: m.rounds}
		return
	}
	// Never wait for an answer beyond the earliest deadline: Done must close on time.
	budget := m.opts.RenewEvery
	if d, ok := m.earliestDeadline(); ok {
		budget = min(budget, d.Sub(start))
	}
	rctx, cancel := context.WithTimeoutCause(ctx, max(budget, time.Millisecond), errRoundTimeout)
	t0 := time.Now()
	results, err := m.renewBatch(rctx, leases)
	took := time.Since(t0)
	cancel()
	m.met.roundDuration.Observe(took.Seconds())

	lost := map[Reason][]mail.MailboxID{}
	deadline := start.Add(m.opts.TTL - m.opts.Skew)
	failed, reconfirmed := 0, 0
	for i, l := range leases {
		switch results[i] {
		case renewOK, renewRestored:
			l.extend(deadline)
			if results[i] == renewRestored {
				m.met.restored.Inc()
			}
			if l.unconfirmed.CompareAndSwap(true, false) {
				reconfirmed++
			}
		case renewMissing:
			m.lose(l, ReasonMissing)
			lost[ReasonMissing] = append(lost[ReasonMissing], l.id)
		case renewTaken:
			m.lose(l, ReasonTaken)
			lost[ReasonTaken] = append(lost[ReasonTaken], l.id)
		default:
			failed++
		}
	}
	m.met.renewFailures.Add(float64(failed + len(lost[ReasonMissing]) + len(lost[ReasonTaken])))
	m.met.held.Set(float64(len(m.held)))
	for _, r := range []Reason{ReasonMissing, ReasonTaken} {
		m.logLost(r, lost[r])
	}
	if reconfirmed > 0 {
		m.log.Info("Redis answered again: leases held through the outage are confirmed", "count", reconfirmed,
			"lost", len(lost[ReasonMissing])+len(lost[ReasonTaken]), "still_unconfirmed", m.unconfirmedCount())
	}
	m.noteRoundError(err, failed, len(leases))
	m.last = Stats{Rounds: m.rounds, LastRound: took, LastRoundSize: len(leases)}
	if err != nil {
		m.last.LastErr = err.Error()
	}
}

// renewBatch sends renew.lua for every lease in one pipeline and returns one
// result per lease (renewFailed where there was no valid reply), plus the
// first error.
func (m *Manager) renewBatch(ctx context.Context, leases []*Lease) ([]int, error) {
	keys := make([][]string, len(leases))
	args := make([][]any, len(leases))
	ttl := m.opts.TTL.Milliseconds()
	for i, l := range leases {
		// An unconfirmed lease's key has expired in Redis by now: restoring it
		// is the only way to keep it, and the fence counter tells whether
		// another node obtained it meanwhile.
		restore := "0"
		if m.opts.RestoreMissing || l.unconfirmed.Load() {
			restore = "1"
		}
		keys[i] = []string{LeaseKey(m.opts.Prefix, l.id), FenceKey(m.opts.Prefix, l.id)}
		args[i] = []any{l.value, ttl, l.fence, restore}
	}
	results := make([]int, len(leases))
	var first error
	for i, cmd := range evalBatch(ctx, m.client, renewScript, keys, args) {
		n, err := cmd.Int64()
		switch {
		case err != nil:
			results[i] = renewFailed
			if first == nil {
				first = err
			}
		case n < renewTaken || n > renewRestored:
			results[i] = renewFailed
			if first == nil {
				first = fmt.Errorf("lease: renew: unexpected reply %d", n)
			}
		default:
			results[i] = int(n)
		}
	}
	if first != nil {
		first = fmt.Errorf("lease: renew: %w", first)
		if cause := context.Cause(ctx); cause != nil {
			first = fmt.Errorf("%w (%w)", first, cause)
		}
	}
	return results, first
}

// lose ends l with reason and forgets it; loop goroutine.
func (m *Manager) lose(l *Lease, reason Reason) {
	delete(m.held, l.id)
	l.unconfirmed.Store(false)
	if l.finish(&LostError{ID: l.id, Fence: l.fence, Reason: reason}) {
		m.met.lost.WithLabelValues(string(reason)).Inc()
		m.log.Debug("lease lost", "mailbox", l.id, "fence", l.fence, "reason", reason)
	}
}

// loseAll loses every held lease (after a panic in the loop).
func (m *Manager) loseAll() {
	var ids []mail.MailboxID
	for _, l := range m.held {
		m.lose(l, ReasonExpired)
		ids = append(ids, l.id)
	}
	clear(m.pending)
	m.met.held.Set(0)
	m.met.unconfirmed.Set(0)
	m.logLost(ReasonExpired, ids)
}

// logLost logs one line per reason and round, not one per lease: a Redis
// restart loses thousands at once.
func (m *Manager) logLost(reason Reason, ids []mail.MailboxID) {
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	m.log.Warn("leases lost", "reason", reason, "count", len(ids), "mailboxes", ids[:min(len(ids), 5)])
}

// noteRoundError logs a failed round when its error differs from the last one,
// and the recovery once.
func (m *Manager) noteRoundError(err error, failed, total int) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == m.lastErr {
		return
	}
	m.lastErr = msg
	if err == nil {
		m.log.Info("lease renewal recovered", "leases", total)
		return
	}
	if obs.Expected(err) { // Stop interrupted the round
		m.log.Debug("lease renewal interrupted", "err", err)
		return
	}
	d, _ := m.earliestDeadline()
	m.log.Warn("lease renewal failed; leases are kept until their deadline", "failed", failed, "leases", total, "earliest_deadline", d, "err", err)
}

// publishStats makes the loop's view readable by Stats, and sets the
// unconfirmed gauge.
func (m *Manager) publishStats() {
	st := m.last
	st.Held = len(m.held)
	st.Unconfirmed = m.unconfirmedCount()
	m.met.unconfirmed.Set(float64(st.Unconfirmed))
	m.stats.Store(&st)
}

// unconfirmedCount counts the held leases past their deadline without an
// answer from Redis; loop goroutine. Derived, not kept: leases also leave
// the set by Release and by ending between rounds.
func (m *Manager) unconfirmedCount() int {
	n := 0
	for _, l := range m.held {
		if l.unconfirmed.Load() && l.Err() == nil {
			n++
		}
	}
	return n
}
