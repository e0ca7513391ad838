// SPDX-License-Identifier: Apache-2.0

package placement

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// LocalRegistry is the store a single node keeps its registrations in.
type LocalRegistry interface {
	PutMailbox(ctx context.Context, m *mail.Mailbox) error
	DeleteMailbox(ctx context.Context, id mail.MailboxID) error
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
}

// LocalOptions configures NewLocal.
type LocalOptions struct {
	Registry LocalRegistry
	Runner   Runner
	// Capacity is the most mailboxes the node serves (0: no limit).
	Capacity   int
	Node       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Local places every mailbox on this node.
type Local struct {
	opts    LocalOptions
	log     *slog.Logger
	refused prometheus.Counter
}

// NewLocal returns a Local; it does no I/O.
func NewLocal(opts LocalOptions) *Local {
	return &Local{opts: opts, log: discard(opts.Logger),
		refused: promauto.With(opts.Registerer).NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_subscriptions_refused_total",
			Help: "Registrations refused because the node serves EL_MAX_SUBSCRIPTIONS mailboxes.",
		})}
}

// Start restores the registered mailboxes (the memory store survives only in
// tests; with a persistent registry this is a restart).
func (l *Local) Start(ctx context.Context) error {
	mbs, err := l.opts.Registry.Mailboxes(ctx)
	if err != nil {
		return fmt.Errorf("restore subscriptions: %w", err)
	}
	for _, mb := range mbs {
		if err := l.opts.Runner.Subscribe(mb, mail.ModeCreate); err != nil {
			return fmt.Errorf("restore subscriptions: %w", err)
		}
	}
	return nil
}

// Stop has nothing to stop: the runner's subscriptions are the runner's.
func (l *Local) Stop(context.Context) error { return nil }

// Subscribe registers mb and runs it here, unless the node is full.
func (l *Local) Subscribe(ctx context.Context, mb *mail.Mailbox, mode mail.Mode) error {
	run := l.opts.Runner
	if _, running := run.Status(mb.ID); !running && l.opts.Capacity > 0 && run.Len() >= l.opts.Capacity {
		l.refused.Inc()
		l.log.Warn("subscription refused: the node serves its maximum of mailboxes (EL_MAX_SUBSCRIPTIONS)", "mailbox", string(mb.ID), "max", l.opts.Capacity)
		return fmt.Errorf("%w (%d)", ErrFull, l.opts.Capacity)
	}
	if err := l.opts.Registry.PutMailbox(ctx, mb); err != nil {
		return err
	}
	return run.Subscribe(mb, mode)
}

// Close stops and forgets id.
func (l *Local) Close(ctx context.Context, id mail.MailboxID) error {
	l.opts.Runner.Unsubscribe(id)
	return l.opts.Registry.DeleteMailbox(ctx, id)
}

// States returns the state of each of ids this node runs.
func (l *Local) States(_ context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	return nodeStates(l.opts.Runner, l.opts.Node, ids), nil
}
