// SPDX-License-Identifier: Apache-2.0

// Package placement decides which node runs a registered mailbox and answers
// where each one runs, behind one interface for the service:
//
//   - Local: one process with the memory store. A registration is stored and
//     started here (up to the node's capacity); the state is the local one.
//   - Cluster: several processes sharing Redis. A registration is stored and
//     announced (cluster.Event); the node that weighted rendezvous hashing
//     places it on runs it (cluster.Assign); a reconcile loop on every node
//     starts what it should run and stops what it should not, the backstop
//     for lost events, node changes and Redis data loss. States come from the
//     store, where each running node publishes them, checked against the
//     mailbox leases so that a state published by a process that is gone is
//     not taken for a live subscription.
package placement

import (
	"errors"
	"log/slog"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Runner runs this node's subscriptions (syncer.Manager).
type Runner interface {
	Subscribe(mb *mail.Mailbox, mode mail.Mode) error
	Unsubscribe(id mail.MailboxID)
	Status(id mail.MailboxID) (mail.Status, bool)
	Len() int
	IDs() []mail.MailboxID
	Mailbox(id mail.MailboxID) (*mail.Mailbox, bool)
	Republish(id mail.MailboxID)
}

// ErrFull is returned by Subscribe when the node serves its maximum of
// mailboxes (EL_MAX_SUBSCRIPTIONS).
var ErrFull = errors.New("placement: this node serves its maximum of mailboxes (EL_MAX_SUBSCRIPTIONS)")

// ErrUnreadable wraps the failure to read the shared state (Redis): a state
// cannot be guessed, since anything but "exists" makes the client re-create
// the mailbox.
var ErrUnreadable = errors.New("placement: shared state unreadable")

func discard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// nodeStates returns the local status of ids this node runs, stamped with
// node.
func nodeStates(run Runner, node string, ids []mail.MailboxID) map[mail.MailboxID]mail.Status {
	out := make(map[mail.MailboxID]mail.Status, len(ids))
	for _, id := range ids {
		if st, ok := run.Status(id); ok {
			st.Node = node
			out[id] = st
		}
	}
	return out
}
