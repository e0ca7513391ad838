// Package storetest is the contract test suite every store implementation must
// pass, so the in-memory and Redis stores keep identical semantics.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Store is the behaviour under test.
type Store interface {
	PutMailbox(ctx context.Context, m *mail.Mailbox) error
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
	DeleteMailbox(ctx context.Context, id mail.MailboxID) error
	Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error)
	PutCursor(ctx context.Context, id mail.MailboxID, folder string, c mail.Cursor) error
}

// Run runs the contract against the store newStore returns (a fresh, empty one
// per subtest). notFound is the implementation's not-found error.
func Run(t *testing.T, newStore func(t *testing.T) Store, notFound error) {
	ctx := context.Background()
	mb := func(id string) *mail.Mailbox {
		return &mail.Mailbox{ID: mail.MailboxID(id), Kind: mail.ServerIMAP, Host: "imap.example.com", Port: 993,
			UserName: "u", Password: "secret", FolderIDs: []string{"INBOX", "Sent"}, Features: map[string]bool{"x": true}}
	}
	t.Run("put get list delete", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Mailbox(ctx, "nope"); !errors.Is(err, notFound) {
			t.Fatalf("Mailbox(unknown) err = %v, want not found", err)
		}
		for _, id := range []string{"b", "a"} {
			if err := s.PutMailbox(ctx, mb(id)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Mailbox(ctx, "a")
		if err != nil || got.Password != "secret" || len(got.FolderIDs) != 2 || !got.Features["x"] {
			t.Fatalf("Mailbox(a) = %+v, %v", got, err)
		}
		got.FolderIDs[0] = "mutated"
		again, _ := s.Mailbox(ctx, "a")
		if again.FolderIDs[0] != "INBOX" {
			t.Fatal("store returned an aliased mailbox")
		}
		all, err := s.Mailboxes(ctx)
		if err != nil || len(all) != 2 || all[0].ID != "a" || all[1].ID != "b" {
			t.Fatalf("Mailboxes = %v, %v", all, err)
		}
		if err := s.DeleteMailbox(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMailbox(ctx, "unknown"); err != nil {
			t.Fatalf("delete unknown: %v", err)
		}
		if _, err := s.Mailbox(ctx, "a"); !errors.Is(err, notFound) {
			t.Fatalf("after delete err = %v", err)
		}
	})
	t.Run("cursors", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutMailbox(ctx, mb("m")); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Cursor(ctx, "m", "INBOX"); ok || err != nil {
			t.Fatalf("cursor before put: ok=%v err=%v", ok, err)
		}
		when := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		c := mail.Cursor{UIDValidity: 7, LastUID: 42, LastDate: when}
		if err := s.PutCursor(ctx, "m", "INBOX", c); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Cursor(ctx, "m", "INBOX")
		if !ok || err != nil || got.UIDValidity != 7 || got.LastUID != 42 || !got.LastDate.Equal(when) {
			t.Fatalf("cursor = %+v ok=%v err=%v", got, ok, err)
		}
		if _, ok, _ := s.Cursor(ctx, "m", "Sent"); ok {
			t.Fatal("cursor leaked to another folder")
		}
		// Re-registering keeps cursors (recreate must not lose the position).
		if err := s.PutMailbox(ctx, mb("m")); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Cursor(ctx, "m", "INBOX"); !ok {
			t.Fatal("PutMailbox dropped cursors")
		}
		// Deleting forgets them.
		if err := s.DeleteMailbox(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Cursor(ctx, "m", "INBOX"); ok {
			t.Fatal("DeleteMailbox kept cursors")
		}
	})
}
