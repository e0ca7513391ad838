// SPDX-License-Identifier: Apache-2.0

// Package syncer runs one supervisor per subscribed mailbox, whatever its
// protocol. A supervisor, in order:
//
//  1. in a cluster, takes the mailbox's lease (Leaser);
//  2. opens a session with the Dialer registered for the mailbox's kind and
//     resolves the folders to watch;
//  3. starts every folder without a cursor at its current end (a new
//     subscription delivers new mail only; history is the client's
//     synchronize call);
//  4. catches up: lists each folder's changes since its cursor, fetches,
//     parses and delivers every message (ingest.Step), and only then advances
//     the cursor (Cursors);
//  5. waits for the next change: pushed on the session's own connection
//     (Waiter: IMAP IDLE), signalled by a shared hub (Signaller: Exchange
//     streaming, Graph notifications), or on a poll timer; every
//     Options.FolderPoll all folders are checked again;
//  6. on any failure reports it once to the client, backs off with jitter and
//     goes back to 2, so mail that arrived meanwhile is delivered after the
//     reconnect.
//
// The mail server is the durable queue: nothing but cursors is stored, and a
// cursor never passes a message the client has not acknowledged. Cursors are
// opaque to this package: the session that lists changes also writes them.
package syncer

import (
	"context"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Session is an open, authenticated session with one mailbox's server.
type Session interface {
	// Folders lists the mailbox's folders.
	Folders(ctx context.Context) ([]mail.Folder, error)
	// Changes lists the messages of folder after cursor, oldest first; an
	// empty cursor returns no messages and the cursor of the folder's end.
	Changes(ctx context.Context, folder, cursor string) (source.Changes, error)
	// Fetch downloads a message Changes listed; source.ErrGone if it was
	// deleted meanwhile.
	Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error)
	Close() error
}

// Waiter is a Session told of new mail on its own connection (IMAP IDLE).
type Waiter interface {
	// Wait returns the folders that changed when the server pushes, nil when
	// max passed, or an error (the session is then over).
	Wait(ctx context.Context, folders []string, max time.Duration) ([]string, error)
}

// Signaller is a Session whose changes are pushed through a hub shared by
// many mailboxes (a streaming subscription, webhook notifications).
type Signaller interface {
	// Signal delivers the folders that changed (nil: unknown, check all).
	Signal() <-chan []string
}

// Marker is a Session that marks a message on the server once the client
// has it (Exchange: the category of Creatio's MarkEmailsAsSynchronized). A
// failed mark is logged and not retried: the mail itself is delivered.
type Marker interface {
	MarkDelivered(ctx context.Context, ref source.Ref) error
}

// pushTimer is a Session that knows when its last push arrived, for the
// latency metric.
type pushTimer interface{ Pushed() time.Time }

// Dialer opens sessions for one protocol.
type Dialer interface {
	Dial(ctx context.Context, mb *mail.Mailbox) (Session, error)
}

// DialerFunc adapts a function to Dialer.
type DialerFunc func(ctx context.Context, mb *mail.Mailbox) (Session, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, mb *mail.Mailbox) (Session, error) { return f(ctx, mb) }

// Sink talks to the client application. Deliver blocks until the message is
// acknowledged (nil), refused for good (an error with PermanentFailure() true:
// the message is skipped), or ctx ends. ReportState tells the client a mailbox
// failed (err != nil) or recovered (err == nil). RefreshToken asks the client
// for a fresh OAuth access token, which arrives as an update registration.
type Sink interface {
	Deliver(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
	ReportState(ctx context.Context, mb *mail.Mailbox, err error) error
	RefreshToken(ctx context.Context, mb *mail.Mailbox) error
}

// Cursors stores per-folder sync positions.
type Cursors interface {
	Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error)
	PutCursor(ctx context.Context, id mail.MailboxID, folder string, c mail.Cursor) error
}

// Parser turns raw message bytes into a message.
type Parser func(raw []byte) (*mail.Message, error)

// FolderLister decides which folders "all folders" means, per protocol.
type FolderLister func(f mail.Folder) bool

// Leaser grants exclusive ownership of a mailbox across nodes (cluster mode).
// Obtain fails while another node holds the mailbox.
type Leaser interface {
	Obtain(ctx context.Context, id mail.MailboxID) (Lease, error)
}

// Lease is held ownership of one mailbox. Done is closed when it is lost; the
// session then stops. Fence is stamped on every cursor write so that a stale
// owner's writes are rejected.
type Lease interface {
	Fence() uint64
	Done() <-chan struct{}
	// Context derives a context that ends when the lease is lost.
	Context(parent context.Context) (context.Context, context.CancelFunc)
	Release(ctx context.Context) error
}

// Lockout holds credentials the server rejected, so that retries never lock
// the user's account (see package lockout).
type Lockout interface {
	// Check reports whether mb's credentials may not be tried before until.
	Check(mb *mail.Mailbox) (until time.Time, reason string, held bool)
	// Failed records a rejection and returns when to try again.
	Failed(mb *mail.Mailbox, reason string) time.Time
	Succeeded(mb *mail.Mailbox)
	Forget(id mail.MailboxID)
}

// Budget is a node-wide allowance of message bytes in flight.
type Budget interface {
	Acquire(ctx context.Context, n int64) (release func(), err error)
}
