// Package syncer runs one supervisor goroutine per subscribed mailbox. A
// supervisor, in order:
//
//  1. connects and logs in (Dialer), resolves the folders to watch;
//  2. starts every folder without a cursor at its current UIDNEXT;
//  3. catches up: fetches every message above the folder's cursor, parses it,
//     delivers it (Sink) and only then advances the cursor (Cursors);
//  4. waits in IDLE on the primary folder (INBOX) until the server pushes EXISTS,
//     polling the other folders' STATUS between IDLE rounds;
//  5. on any failure reports it once to the client, backs off with jitter and
//     goes back to 1, so mail that arrived meanwhile is delivered after the
//     reconnect.
//
// The mail server is the durable queue: nothing but cursors is stored, and a
// cursor never passes a message the client has not acknowledged.
package syncer

import (
	"context"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Session is an open, authenticated connection to a mailbox's server.
type Session interface {
	Folders(ctx context.Context) ([]source.Folder, error)
	Status(ctx context.Context, folder string) (source.FolderStatus, error)
	Examine(ctx context.Context, folder string) (source.FolderStatus, error)
	ListAfter(ctx context.Context, uid uint32) ([]source.MessageRef, error)
	SearchSince(ctx context.Context, since time.Time) ([]source.MessageRef, error)
	Fetch(ctx context.Context, ref source.MessageRef) (*source.Fetched, error)
	// Idle returns when wake fires, max passes, the server pushes new mail (the
	// dialer's onExists callback), or ctx ends.
	Idle(ctx context.Context, wake <-chan struct{}, max time.Duration) error
	Close() error
}

// Dialer opens sessions. onExists is called on the connection's reader
// goroutine when the server reports new messages; it must not block.
type Dialer interface {
	Dial(ctx context.Context, mb *mail.Mailbox, onExists func()) (Session, error)
}

// DialerFunc adapts a function to Dialer.
type DialerFunc func(ctx context.Context, mb *mail.Mailbox, onExists func()) (Session, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, mb *mail.Mailbox, onExists func()) (Session, error) {
	return f(ctx, mb, onExists)
}

// Sink delivers to the client application. Deliver blocks until the message is
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

// permanent is implemented by delivery errors that must not be retried.
type permanent interface{ PermanentFailure() bool }

// FolderLister decides which folders "all folders" means.
type FolderLister func(f source.Folder) bool

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
