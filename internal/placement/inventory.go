// SPDX-License-Identifier: Apache-2.0

package placement

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// NodeLoad is one node as the dashboard shows it: what it may hold and what
// it holds.
type NodeLoad struct {
	ID   string
	Addr string
	// Capacity is EL_MAX_SUBSCRIPTIONS of the node (0: no limit).
	Capacity int
	// Owned is how many mailboxes the node serves: live for this node, as of
	// its last heartbeat for the others.
	Owned   int
	Started time.Time // zero when unknown
	Updated time.Time // the last heartbeat; zero on a single node
	Leaving bool
	Self    bool // the node answering
}

// Mailboxes lists the mailboxes this node runs (on a single node: every
// registered mailbox). The records are the runner's: read them, never change
// them.
func (l *Local) Mailboxes(context.Context) ([]*mail.Mailbox, error) {
	return running(l.opts.Runner), nil
}

// Mailbox returns the registered mailbox id (nil when there is none),
// without listing the others.
func (l *Local) Mailbox(_ context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	mb, _ := l.opts.Runner.Mailbox(id)
	return mb, nil
}

// NodeLoads describes this node.
func (l *Local) NodeLoads(context.Context) ([]NodeLoad, error) {
	return []NodeLoad{{ID: l.opts.Node, Capacity: l.opts.Capacity, Owned: l.opts.Runner.Len(), Self: true}}, nil
}

// Mailboxes lists every registered mailbox of the cluster. It reads (and
// opens) every record in the store: callers should not ask more than every
// few seconds.
func (c *Cluster) Mailboxes(ctx context.Context) ([]*mail.Mailbox, error) {
	mbs, err := c.opts.Store.Mailboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: list mailboxes (Redis unreachable?): %v", ErrUnreadable, err)
	}
	return mbs, nil
}

// Mailbox reads the registered mailbox id from the store (nil when there is
// none, or its record cannot be opened).
func (c *Cluster) Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	mb, err := c.opts.Store.Mailbox(ctx, id)
	if err != nil && c.opts.Skip != nil && c.opts.Skip(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read mailbox (Redis unreachable?): %v", ErrUnreadable, err)
	}
	return mb, nil
}

// NodeLoads describes the live nodes; this node's load is its live count.
func (c *Cluster) NodeLoads(ctx context.Context) ([]NodeLoad, error) {
	nodes, err := c.opts.Members.Members(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: list nodes (Redis unreachable?): %v", ErrUnreadable, err)
	}
	out := make([]NodeLoad, 0, len(nodes))
	for _, n := range nodes {
		nl := NodeLoad{ID: n.ID, Addr: n.Addr, Capacity: n.Capacity, Owned: n.Owned, Started: n.Started,
			Updated: n.Updated, Leaving: n.Leaving, Self: n.ID == c.opts.Node}
		if nl.Self {
			nl.Owned = c.opts.Runner.Len()
		}
		out = append(out, nl)
	}
	slices.SortFunc(out, func(a, b NodeLoad) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// running returns the registrations the runner runs.
func running(run Runner) []*mail.Mailbox {
	ids := run.IDs()
	out := make([]*mail.Mailbox, 0, len(ids))
	for _, id := range ids {
		if mb, ok := run.Mailbox(id); ok {
			out = append(out, mb)
		}
	}
	return out
}
