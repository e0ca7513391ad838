// Package store keeps the service's shared state: the mailbox registry (what the
// client registered) and the per-folder sync cursors. The embedded in-memory
// implementation is the default; a Redis implementation with the same semantics
// serves clusters. No message bodies are ever stored: the mail server is the
// durable queue, and a cursor only advances after the client acknowledged a
// delivery.
package store

import (
	"errors"
	"maps"
	"slices"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// ErrNotFound is returned when a mailbox is not registered.
var ErrNotFound = errors.New("store: mailbox not found")

// cloneMailbox returns a deep copy, so callers can never alias stored state.
func cloneMailbox(m *mail.Mailbox) *mail.Mailbox {
	c := *m
	c.FolderIDs = slices.Clone(m.FolderIDs)
	c.Features = maps.Clone(m.Features)
	c.Extra = maps.Clone(m.Extra)
	return &c
}
