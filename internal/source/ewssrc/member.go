package ewssrc

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/ews"
)

// member is one mailbox's streaming subscription in a group. The group's
// goroutine reports to it; the mailbox's session waits on it.
type member struct {
	g       *group
	addr    string
	folders []string // the watched folder ids, as subscribed
	c       *ews.Client
	target  ews.Target // the mailbox's own target (own-connection groups)

	signal chan struct{} // buffered(1): something to take

	mu      sync.Mutex
	changed []string  // watched folders notified since the last take
	all     bool      // catch up every folder (after a gap)
	err     error     // the subscription failed for good: the session ends
	at      time.Time // when the first untaken notification arrived
	last    time.Time // when the notification last taken arrived
}

func newMember(addr string, folders []string, c *ews.Client, t ews.Target) *member {
	return &member{addr: addr, folders: slices.Clone(folders), c: c, target: t, signal: make(chan struct{}, 1)}
}

// folderIDs are the folders to subscribe.
func (m *member) folderIDs() []ews.FolderID {
	ids := make([]ews.FolderID, len(m.folders))
	for i, f := range m.folders {
		ids[i] = ews.FolderID{ID: f}
	}
	return ids
}

// notify records that folders changed; all (or nil folders) asks for a
// catch-up of every watched folder. Folders the mailbox does not watch are
// ignored.
func (m *member) notify(folders []string, all bool) {
	m.mu.Lock()
	hit := all
	if all {
		m.all = true
	}
	for _, f := range folders {
		if slices.Contains(m.folders, f) {
			hit = true
			if !slices.Contains(m.changed, f) {
				m.changed = append(m.changed, f)
			}
		}
	}
	if hit && m.at.IsZero() {
		m.at = time.Now()
	}
	m.mu.Unlock()
	if hit {
		m.wake()
	}
}

// fail ends the subscription with err; the waiting session returns it.
func (m *member) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
	m.wake()
}

func (m *member) wake() {
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

// take returns what was notified since the last take; ok is false when
// nothing was.
func (m *member) take() (folders []string, err error, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.err != nil:
		return nil, m.err, true
	case m.all:
		folders = slices.Clone(m.folders)
	case len(m.changed) > 0:
		folders = m.changed
	default:
		return nil, nil, false
	}
	m.changed, m.all = nil, false
	m.last, m.at = m.at, time.Time{}
	return folders, nil, true
}

// wait returns the folders that changed, nil when max passed, or the error
// that ended the subscription.
func (m *member) wait(ctx context.Context, max time.Duration) ([]string, error) {
	t := time.NewTimer(max)
	defer t.Stop()
	for {
		if folders, err, ok := m.take(); ok {
			return folders, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.signal:
		case <-t.C:
			return nil, nil
		}
	}
}

// pushed returns when the notification last taken arrived.
func (m *member) pushed() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// leave takes the member out of its group and drops its subscription.
func (m *member) leave() { m.g.remove(m) }
