// SPDX-License-Identifier: Apache-2.0

package service

import (
	"context"

	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/placement"
)

// Lister is what a Placement offers the dashboard: every registered mailbox
// and the nodes with their load. Optional: without it Inventory is
// unsupported.
type Lister interface {
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
	// Mailbox returns one registered mailbox, nil when there is none.
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	NodeLoads(ctx context.Context) ([]placement.NodeLoad, error)
}

// NodeInfo is one node with its capacity and load.
type NodeInfo = placement.NodeLoad

// MailboxInfo is one registered mailbox as the dashboard shows it; it holds
// nothing secret (no credentials, no client context).
type MailboxInfo struct {
	ID      mail.MailboxID
	Address string // SenderEmailAddress
	Kind    mail.ServerKind
	// Status is where and how it runs; nil when no node runs it.
	Status *mail.Status
	// History is the last history load on this node, if any.
	History *mail.HistoryProgress
}

// Inventory is the whole picture: the nodes and every registered mailbox.
type Inventory struct {
	Mode      string // "single" or "cluster"
	Node      string // the node answering (EL_NODE_ID in a cluster)
	Nodes     []NodeInfo
	Mailboxes []MailboxInfo
}

// Inventory lists the nodes and every registered mailbox with its state and
// this node's history progress. It reads every registration (in a cluster,
// every record in Redis): the dashboard's pace, not Creatio's.
func (s *Service) Inventory(ctx context.Context) (Inventory, error) {
	lister, ok := s.opts.Placement.(Lister)
	if !ok {
		return Inventory{}, httpapi.ErrUnsupported
	}
	inv := Inventory{Mode: "single", Node: s.opts.Node}
	if s.opts.Store == "redis" {
		inv.Mode = "cluster"
	}
	nodes, err := lister.NodeLoads(ctx)
	if err != nil {
		return Inventory{}, unavailable(err)
	}
	inv.Nodes = nodes
	mbs, err := lister.Mailboxes(ctx)
	if err != nil {
		return Inventory{}, unavailable(err)
	}
	ids := make([]mail.MailboxID, len(mbs))
	for i, mb := range mbs {
		ids[i] = mb.ID
	}
	states, err := s.opts.Placement.States(ctx, ids)
	if err != nil {
		return Inventory{}, unavailable(err)
	}
	inv.Mailboxes = make([]MailboxInfo, len(mbs))
	for i, mb := range mbs {
		mi := MailboxInfo{ID: mb.ID, Address: mb.SenderAddress, Kind: mb.Kind}
		if st, ok := states[mb.ID]; ok {
			mi.Status = &st
		}
		if p, ok := s.opts.Loads.Progress(mb.ID); ok {
			mi.History = &p
		}
		inv.Mailboxes[i] = mi
	}
	return inv, nil
}

// Mailboxes returns every registered mailbox (credentials included: for the
// native API, which shows its own accounts without them).
func (s *Service) Mailboxes(ctx context.Context) ([]*mail.Mailbox, error) {
	lister, ok := s.opts.Placement.(Lister)
	if !ok {
		return nil, httpapi.ErrUnsupported
	}
	mbs, err := lister.Mailboxes(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return mbs, nil
}

// Mailbox returns the registered mailbox id (credentials included), nil when
// there is none.
func (s *Service) Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	lister, ok := s.opts.Placement.(Lister)
	if !ok {
		return nil, httpapi.ErrUnsupported
	}
	mb, err := lister.Mailbox(ctx, id)
	if err != nil {
		return nil, unavailable(err)
	}
	return mb, nil
}

// Statuses returns the status of the ids some node serves, as
// subscriptionsstate reads them.
func (s *Service) Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	states, err := s.opts.Placement.States(ctx, ids)
	if err != nil {
		return nil, unavailable(err)
	}
	return states, nil
}
