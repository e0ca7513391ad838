package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/history"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/syncer"
)

// Registry is the mailbox registry the service writes.
type Registry interface {
	PutMailbox(ctx context.Context, m *mail.Mailbox) error
	DeleteMailbox(ctx context.Context, id mail.MailboxID) error
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
}

// service implements httpapi.Service on top of the registry and the syncer.
type service struct {
	registry Registry
	syncer   *syncer.Manager
	history  *history.Loader
	version  string
	started  time.Time

	storeName string
	node      string
	max       int // most subscriptions on a single node (memory mode)
	refused   prometheus.Counter
	log       *slog.Logger
	// Cluster mode only: the coordinator places mailboxes, statuses come from
	// Redis so that any node answers for any mailbox.
	coord    *coordinator
	statuses interface {
		Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error)
	}
	// holders tells which node holds each mailbox's lease: a published
	// "exists" counts only while its node still holds the mailbox.
	holders interface {
		Holders(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]string, error)
	}
	// members is the live cluster view: a state published before its node's
	// current process started is that of a process that is gone.
	members interface{ View() []cluster.Node }
}

var _ httpapi.Service = (*service)(nil)

func (s *service) Subscribe(ctx context.Context, mbs []*mail.Mailbox, mode httpapi.Mode) error {
	m := syncer.ModeCreate
	switch mode {
	case httpapi.Recreate:
		m = syncer.ModeRecreate
	case httpapi.Update:
		m = syncer.ModeUpdate
	}
	for _, mb := range mbs {
		if s.coord == nil {
			if _, running := s.syncer.Status(mb.ID); !running && s.max > 0 && s.syncer.Len() >= s.max {
				s.refused.Inc()
				s.log.Warn("subscription refused: the node serves its maximum of mailboxes (EL_MAX_SUBSCRIPTIONS)", "mailbox", string(mb.ID), "max", s.max)
				return fmt.Errorf("%w: this node serves its maximum of %d mailboxes (EL_MAX_SUBSCRIPTIONS)", httpapi.ErrUnavailable, s.max)
			}
		}
		if err := s.registry.PutMailbox(ctx, mb); err != nil {
			return err
		}
		if s.coord != nil {
			s.coord.announce(ctx, subEvent(m, mb.ID))
			continue
		}
		if err := s.syncer.Subscribe(mb, m); err != nil {
			if errors.Is(err, syncer.ErrStopped) {
				return httpapi.ErrUnavailable
			}
			return err
		}
	}
	return nil
}

func (s *service) Close(ctx context.Context, ids []mail.MailboxID) error {
	for _, id := range ids {
		s.syncer.Unsubscribe(id)
		s.history.Forget(id)
		if err := s.registry.DeleteMailbox(ctx, id); err != nil {
			return err
		}
		if s.coord != nil {
			s.coord.announce(ctx, "close:"+string(id))
		}
	}
	return nil
}

func (s *service) States(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]creatio.SubscriptionState, error) {
	out := make(map[mail.MailboxID]creatio.SubscriptionState, len(ids))
	var remote map[mail.MailboxID]mail.Status
	if s.statuses != nil {
		var err error
		if remote, err = s.statuses.Statuses(ctx, ids); err != nil {
			// Unavailable rather than guessed: a state other than exists
			// makes Creatio's failover job recreate the mailbox.
			return nil, fmt.Errorf("%w: read subscription states (Redis unreachable?): %v", httpapi.ErrUnavailable, err)
		}
	}
	held, err := s.heldRemotely(ctx, ids, remote)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		st, ok := s.syncer.Status(id)
		node := s.node
		if r, rok := remote[id]; !ok && rok && r.State == syncer.StateExists && !s.liveClaim(r, held[id]) {
			// Published by a node that no longer serves the mailbox (it
			// crashed, handed it over, or restarted and cannot open it):
			// not exists, so that Creatio's failover re-creates it.
			out[id] = creatio.SubscriptionState{State: syncer.StateClosed, Extra: map[string]any{
				"LastKnownState": r.State, "LastKnownNode": r.Node, "Note": "no live node holds this mailbox"}}
			continue
		} else if !ok && rok {
			// Held by another node: its published state.
			st, ok = syncer.Status{State: r.State, Since: r.Since, ErrorClass: r.ErrorClass, LastError: r.LastError,
				RetryAt: r.RetryAt, LastEventAt: r.LastEventAt, Delivered: r.Delivered, Folders: r.Folders}, true
			node = r.Node
		}
		hist, hok := s.history.Progress(id)
		if !ok {
			state := creatio.SubscriptionState{State: syncer.StateClosed}
			if hok {
				state.Extra = map[string]any{"History": historyJSON(hist)}
			}
			out[id] = state
			continue
		}
		extra := map[string]any{
			"Since":     st.Since.UTC().Format(time.RFC3339),
			"Delivered": st.Delivered,
			"Folders":   st.Folders,
		}
		if node != "" {
			extra["Node"] = node
		}
		if !st.LastEventAt.IsZero() {
			extra["LastEventTime"] = st.LastEventAt.UTC().Format(time.RFC3339)
		}
		if st.State == syncer.StateError {
			extra["ErrorClass"] = st.ErrorClass
			extra["ExceptionClassName"] = creatio.ExceptionClassName(mail.ErrorClass(st.ErrorClass))
			extra["LastError"] = st.LastError
			extra["RetryAt"] = st.RetryAt.UTC().Format(time.RFC3339)
		}
		if hok {
			extra["History"] = historyJSON(hist)
		}
		out[id] = creatio.SubscriptionState{State: st.State, Extra: extra}
	}
	return out, nil
}

// liveClaim reports whether a published exists state is backed by a live
// process: its node holds the mailbox's lease and has been running since
// before the state was published (a node restarted under the same name holds
// the lease of its previous process until it expires).
func (s *service) liveClaim(r mail.Status, holder string) bool {
	if holder != r.Node {
		return false
	}
	if s.members == nil {
		return true
	}
	for _, n := range s.members.View() {
		if n.ID == r.Node {
			return !r.Since.Add(time.Millisecond).Before(n.Started) // Since is stored in ms
		}
	}
	return false
}

// heldRemotely returns the lease holders of the ids that another node
// published as exists; nil when there is nothing to check.
func (s *service) heldRemotely(ctx context.Context, ids []mail.MailboxID, remote map[mail.MailboxID]mail.Status) (map[mail.MailboxID]string, error) {
	if s.holders == nil {
		return nil, nil
	}
	var check []mail.MailboxID
	for _, id := range ids {
		if r, ok := remote[id]; ok && r.State == syncer.StateExists {
			if _, local := s.syncer.Status(id); !local {
				check = append(check, id)
			}
		}
	}
	if len(check) == 0 {
		return nil, nil
	}
	held, err := s.holders.Holders(ctx, check)
	if err != nil {
		return nil, fmt.Errorf("%w: read mailbox leases (Redis unreachable?): %v", httpapi.ErrUnavailable, err)
	}
	return held, nil
}

func (s *service) Status(context.Context) creatio.ServiceStatus {
	counts := s.syncer.Counts()
	total := 0
	for _, n := range counts {
		total += n
	}
	return creatio.ServiceStatus{
		ServiceStatus: creatio.StatusStarted,
		Version:       s.version,
		Extra: map[string]any{
			"Subscriptions": counts,
			"Total":         total,
			"Goroutines":    runtime.NumGoroutine(),
			"Uptime":        time.Since(s.started).Round(time.Second).String(),
			"Store":         s.storeName,
			"Node":          s.node,
		},
	}
}

// historyJSON renders a history load's progress for subscriptionsstate.
func historyJSON(p history.Progress) map[string]any {
	m := map[string]any{"State": p.State, "Filter": p.Filter, "Found": p.Found, "Delivered": p.Delivered,
		"Skipped": p.Skipped, "Started": p.Started.UTC().Format(time.RFC3339)}
	if p.Folder != "" {
		m["Folder"] = p.Folder
	}
	if !p.Finished.IsZero() {
		m["Finished"] = p.Finished.UTC().Format(time.RFC3339)
	}
	if p.Error != "" {
		m["Error"] = p.Error
	}
	return m
}

// restore re-subscribes every registered mailbox at start-up.
func (s *service) restore(ctx context.Context) (int, error) {
	mbs, err := s.registry.Mailboxes(ctx)
	if err != nil {
		return 0, err
	}
	for _, mb := range mbs {
		if err := s.syncer.Subscribe(mb, syncer.ModeCreate); err != nil {
			return 0, err
		}
	}
	return len(mbs), nil
}

var _ Registry = (*store.Memory)(nil)
