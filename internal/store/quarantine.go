// SPDX-License-Identifier: Apache-2.0

package store

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// RecordError is a mailbox record that exists but cannot be opened: sealed
// with another secret key, corrupted, or written by a newer version. Read it
// with errors.As.
type RecordError struct {
	ID  mail.MailboxID
	Err error
}

func (e *RecordError) Error() string { return e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// ErrNoReadableRecord is returned by Health when records exist but none of
// them could be opened: the configured secret key is almost certainly wrong.
var ErrNoReadableRecord = errors.New("store: no mailbox record can be opened with the configured secret key (EL_SECRET_KEY / EL_SECRET_KEY_FILE): is it the key the records were written with?")

// quarantine remembers the records that could not be opened, logs each once,
// and counts them in a gauge. It also keeps how many records the last full
// listing could open, for Health.
type quarantine struct {
	log   *slog.Logger
	gauge prometheus.Gauge

	mu       sync.Mutex
	bad      map[mail.MailboxID]bool
	readable int  // records opened by the last full listing; -1 before one
	said     bool // the "no readable record" error was logged
}

// loggedRecords is how many unreadable records are logged one by one; the
// rest only count (a wrong key makes every record unreadable).
const loggedRecords = 10

func newQuarantine(log *slog.Logger, reg prometheus.Registerer) *quarantine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &quarantine{log: log, bad: make(map[mail.MailboxID]bool), readable: -1,
		gauge: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_store_unreadable_records",
			Help: "Mailbox records in Redis this node cannot open (wrong secret key or corruption); their mailboxes are not served until re-registered.",
		})}
}

func (q *quarantine) add(id mail.MailboxID, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bad[id] {
		return
	}
	q.bad[id] = true
	q.gauge.Inc()
	switch n := len(q.bad); {
	case n <= loggedRecords:
		q.log.Error("mailbox record cannot be opened, mailbox skipped until it is registered again", "mailbox", string(id), "err", err)
	case n == loggedRecords+1:
		q.log.Error("more mailbox records cannot be opened; see the emaillistener_store_unreadable_records gauge")
	}
}

// remove notes that id's record is readable (opened, or written anew with
// this node's key).
func (q *quarantine) remove(id mail.MailboxID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bad[id] {
		delete(q.bad, id)
		q.gauge.Dec()
		if q.readable >= 0 {
			q.readable++ // healthy again before the next full listing
		}
	}
}

func (q *quarantine) listed(readable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.readable = readable
	none := readable == 0 && len(q.bad) > 0
	if none && !q.said {
		q.log.Error("not ready: "+ErrNoReadableRecord.Error(), "unreadable", len(q.bad))
	}
	q.said = none
}

// Health fails with ErrNoReadableRecord when the last full listing found
// records but could open none of them.
func (s *Redis) Health() error {
	q := s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.readable == 0 && len(q.bad) > 0 {
		return fmt.Errorf("%w (%d unreadable)", ErrNoReadableRecord, len(q.bad))
	}
	return nil
}

// Unreadable returns the number of quarantined records.
func (s *Redis) Unreadable() int {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return len(s.q.bad)
}
