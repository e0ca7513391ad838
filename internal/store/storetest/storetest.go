// SPDX-License-Identifier: Apache-2.0

// Package storetest is the contract test suite every store implementation must
// pass, so the in-memory and Redis stores keep identical semantics.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/store"
)

// Store is the behaviour under test.
type Store interface {
	PutMailbox(ctx context.Context, m *mail.Mailbox) error
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
	DeleteMailbox(ctx context.Context, id mail.MailboxID) error
	Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error)
	PutCursor(ctx context.Context, id mail.MailboxID, folder string, c mail.Cursor) error
	PutStatus(ctx context.Context, id mail.MailboxID, st mail.Status) error
	Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error)
}

// FullMailbox returns a mailbox with every field set, shaped like what Creatio
// registers (about 1 KB of create request).
func FullMailbox(id string) *mail.Mailbox {
	return &mail.Mailbox{
		ID: mail.MailboxID(id), Kind: mail.ServerIMAP, ServerType: "844f0837-eaa0-4f40-b965-71f5db9eae6e",
		Host: "imap.example.com", Port: 993, UseSSL: true, Secure: mail.SecureSSL,
		UserName: "john.doe@example.com", Password: `p"a:s{s}\w,o'rd`, AccessToken: "", UseOAuth: false,
		FolderIDs: []string{"INBOX", "Sent Items", "Archive/2025/Customers", ""},
		Endpoint:  "https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail",
		User:      "Supervisor", Workspace: "Default", TimeZone: "Russian Standard Time",
		SenderAddress: "john.doe@example.com", Context: "{UserRequested:true,HasError:false}",
		SubscriptionTTL: -1,
		Features:        map[string]bool{"MarkEmailsAsSynchronized": true, "UseBinaryData": false},
		Extra:           map[string]string{"ServiceUrl": "imap.example.com", "UseFullEmail": "true", "Empty": ""},
	}
}

// NativeMailbox returns a mailbox registered through the native API, with
// its webhook target and secret.
func NativeMailbox(id string) *mail.Mailbox {
	return &mail.Mailbox{ID: mail.MailboxID(id), Kind: mail.ServerIMAP, ServerType: "imap", Host: "imap.example.com", Port: 993,
		UseSSL: true, Secure: mail.SecureSSL, UserName: "jane@example.com", Password: "pw", FolderIDs: []string{"INBOX"},
		SenderAddress: "jane@example.com", Client: mail.ClientNative, WebhookURL: "https://hooks.example.com/mail?x=1",
		WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", WebhookEvents: []string{"message.new", "account.state"},
		WebhookRaw: true, WebhookInlineMax: -1,
		SMTP: &mail.Server{Host: "smtp.example.com", Port: 587, Secure: mail.SecureStartTLS, UserName: "jane", Password: "smtp-pw"}}
}

// Run runs the contract against the store newStore returns (a fresh, empty one
// per subtest). notFound is the implementation's not-found error.
func Run(t *testing.T, newStore func(t *testing.T) Store, notFound error) {
	ctx := context.Background()
	mb := func(id string) *mail.Mailbox {
		return &mail.Mailbox{ID: mail.MailboxID(id), Kind: mail.ServerIMAP, Host: "imap.example.com", Port: 993,
			UserName: "u", Password: "secret", FolderIDs: []string{"INBOX", "Sent"}, Features: map[string]bool{"x": true}}
	}
	t.Run("native mailbox", func(t *testing.T) {
		s := newStore(t)
		want := NativeMailbox("native-1")
		if err := s.PutMailbox(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Mailbox(ctx, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("native mailbox: %#v, %v\nwant %#v", got, err, want)
		}
	})
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
		if all, _ := s.Mailboxes(ctx); len(all) != 1 || all[0].ID != "b" {
			t.Fatalf("Mailboxes after delete = %v", all)
		}
	})
	t.Run("mailbox round trip", func(t *testing.T) {
		s := newStore(t)
		want := FullMailbox("1111aaaa-2222-4bbb-8ccc-333333dddddd")
		if err := s.PutMailbox(ctx, want); err != nil {
			t.Fatal(err)
		}
		want.Host = "mutated after put"
		want = FullMailbox(string(want.ID))
		got, err := s.Mailbox(ctx, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Mailbox =\n%#v, %v\nwant\n%#v", got, err, want)
		}
		all, err := s.Mailboxes(ctx)
		if err != nil || len(all) != 1 || !reflect.DeepEqual(all[0], want) {
			t.Fatalf("Mailboxes = %#v, %v", all, err)
		}
		// Replacing swaps every field; empty collections read back as nil.
		repl := &mail.Mailbox{ID: want.ID, Kind: mail.ServerExchange, AccessToken: "eyJ0eXAi.tok", UseOAuth: true,
			FolderIDs: []string{}, Features: map[string]bool{}, Extra: map[string]string{}}
		if err := s.PutMailbox(ctx, repl); err != nil {
			t.Fatal(err)
		}
		got, err = s.Mailbox(ctx, want.ID)
		wantRepl := &mail.Mailbox{ID: want.ID, Kind: mail.ServerExchange, AccessToken: "eyJ0eXAi.tok", UseOAuth: true}
		if err != nil || !reflect.DeepEqual(got, wantRepl) {
			t.Fatalf("after replace: %#v, %v", got, err)
		}
		if err := s.PutMailbox(ctx, &mail.Mailbox{}); err == nil {
			t.Fatal("PutMailbox with an empty id succeeded")
		}
	})
	t.Run("many mailboxes", func(t *testing.T) {
		s := newStore(t)
		const n = 1100 // more than one listing batch of the Redis store
		for i := n - 1; i >= 0; i-- {
			if err := s.PutMailbox(ctx, mb(fmt.Sprintf("m%05d", i))); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.Mailboxes(ctx)
		if err != nil || len(all) != n {
			t.Fatalf("Mailboxes: %d, %v", len(all), err)
		}
		for i, m := range all {
			if want := mail.MailboxID(fmt.Sprintf("m%05d", i)); m.ID != want || m.Password != "secret" {
				t.Fatalf("Mailboxes[%d] = %s, want %s", i, m.ID, want)
			}
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
		c := mail.Cursor{Data: "7:42:1761991200"}
		if err := s.PutCursor(ctx, "m", "INBOX", c); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Cursor(ctx, "m", "INBOX")
		if !ok || err != nil || got != c {
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
	t.Run("cursor round trip", func(t *testing.T) {
		s := newStore(t)
		// Not registered: cursors work without a mailbox record. Data is
		// opaque: colons (IMAP), URLs (Graph delta links), long base64
		// (Exchange sync states), any folder name.
		datas := []string{"4294967295:4294967294:1761993015", "https://graph.example/v1.0/delta?$deltatoken=a:b==",
			strings.Repeat("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/", 64), "x"}
		for i, folder := range []string{"INBOX", "Projects/2026 \"Q:1\"", "Входящие", "", "a:b:c"} {
			in := mail.Cursor{Data: datas[i%len(datas)], Fence: 1<<64 - 1 - uint64(i)}
			if err := s.PutCursor(ctx, mail.MailboxID("m"+strconv.Itoa(i)), folder, in); err != nil {
				t.Fatalf("PutCursor(%q): %v", folder, err)
			}
			got, ok, err := s.Cursor(ctx, mail.MailboxID("m"+strconv.Itoa(i)), folder)
			if !ok || err != nil || got != in {
				t.Fatalf("Cursor(%q) = %+v ok=%v err=%v\nwant %+v", folder, got, ok, err, in)
			}
		}
	})
	t.Run("fencing", func(t *testing.T) {
		s := newStore(t)
		put := func(folder string, uid uint32, fence uint64) error {
			return s.PutCursor(ctx, "m", folder, mail.Cursor{Data: "1:" + strconv.Itoa(int(uid)) + ":0", Fence: fence})
		}
		lastUID := func(c mail.Cursor) uint32 {
			n, _ := strconv.Atoi(strings.Split(c.Data, ":")[1])
			return uint32(n)
		}
		get := func(folder string) mail.Cursor {
			t.Helper()
			c, ok, err := s.Cursor(ctx, "m", folder)
			if !ok || err != nil {
				t.Fatalf("Cursor(%s): ok=%v err=%v", folder, ok, err)
			}
			return c
		}
		// A single node writes fence 0 over and over.
		for uid := uint32(1); uid <= 3; uid++ {
			if err := put("INBOX", uid, 0); err != nil {
				t.Fatalf("fence 0 write %d: %v", uid, err)
			}
		}
		if err := put("INBOX", 10, 5); err != nil {
			t.Fatalf("higher fence: %v", err)
		}
		err := put("INBOX", 99, 4)
		if !errors.Is(err, store.ErrStaleFence) {
			t.Fatalf("lower fence: err = %v, want ErrStaleFence", err)
		}
		if !strings.Contains(err.Error(), "store: stale fence") {
			t.Fatalf("error text %q", err)
		}
		if c := get("INBOX"); lastUID(c) != 10 || c.Fence != 5 {
			t.Fatalf("stale write changed the cursor: %+v", c)
		}
		if err := put("INBOX", 0, 0); !errors.Is(err, store.ErrStaleFence) {
			t.Fatalf("fence 0 after 5: err = %v", err)
		}
		if err := put("INBOX", 11, 5); err != nil {
			t.Fatalf("equal fence: %v", err)
		}
		if err := put("INBOX", 12, 6); err != nil {
			t.Fatalf("higher fence: %v", err)
		}
		if c := get("INBOX"); lastUID(c) != 12 || c.Fence != 6 {
			t.Fatalf("cursor = %+v", c)
		}
		// The fence is per folder: another folder has none stored yet.
		if err := put("Sent", 1, 1); err != nil {
			t.Fatalf("first write of another folder: %v", err)
		}
		// Fences compare exactly over the whole uint64 range (no float rounding).
		if err := put("Big", 1, 1<<53+1); err != nil {
			t.Fatal(err)
		}
		if err := put("Big", 2, 1<<53); !errors.Is(err, store.ErrStaleFence) {
			t.Fatalf("2^53 after 2^53+1: err = %v", err)
		}
		if err := put("Big", 3, 1<<64-1); err != nil {
			t.Fatal(err)
		}
		if err := put("Big", 4, 1<<64-2); !errors.Is(err, store.ErrStaleFence) {
			t.Fatalf("max-1 after max: err = %v", err)
		}
		if err := put("Big", 5, 1<<64-1); err != nil {
			t.Fatalf("equal max fence: %v", err)
		}
		// Deleting the mailbox forgets the fences with the cursors.
		if err := s.DeleteMailbox(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		if err := put("INBOX", 1, 0); err != nil {
			t.Fatalf("after delete: %v", err)
		}
	})
	t.Run("concurrent fenced writers", func(t *testing.T) {
		s := newStore(t)
		const writers = 8
		var wg sync.WaitGroup
		for w := 1; w <= writers; w++ {
			wg.Go(func() {
				for i := range 20 {
					err := s.PutCursor(ctx, "m", "INBOX", mail.Cursor{Data: strconv.Itoa(w*100 + i), Fence: uint64(w)})
					if err != nil && !errors.Is(err, store.ErrStaleFence) {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		c, _, err := s.Cursor(ctx, "m", "INBOX")
		if n, _ := strconv.Atoi(c.Data); err != nil || c.Fence != writers || n/100 != writers {
			t.Fatalf("after the race: %+v, %v; want the highest fence's write", c, err)
		}
	})
	t.Run("statuses", func(t *testing.T) {
		s := newStore(t)
		if got, err := s.Statuses(ctx, nil); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("Statuses(nil) = %v, %v; want an empty map", got, err)
		}
		msk := time.FixedZone("MSK", 3*3600)
		long := strings.Repeat("é", store.MaxLastError) // 2 bytes each: cut at a character boundary
		in := mail.Status{State: "error", ErrorClass: "auth", LastError: long, Node: "el-0",
			Since:       time.Date(2026, 11, 1, 12, 0, 0, 123456789, msk),
			RetryAt:     time.Date(2026, 11, 1, 12, 0, 30, 0, time.UTC),
			LastEventAt: time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC),
			Delivered:   1<<64 - 1, Folders: []string{"INBOX", "Sent Items", ""}, Kind: mail.ServerExchange, Transport: "graph", Push: "idle"}
		if err := s.PutStatus(ctx, "a", in); err != nil { // no mailbox record needed
			t.Fatal(err)
		}
		in.Folders[0] = "mutated"
		if err := s.PutStatus(ctx, "b", mail.Status{State: "exists", Folders: []string{}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Statuses(ctx, []mail.MailboxID{"a", "b", "missing", "a"})
		if err != nil {
			t.Fatal(err)
		}
		wantA := mail.Status{State: "error", ErrorClass: "auth", LastError: long[:store.MaxLastError], Node: "el-0",
			Since:       time.Date(2026, 11, 1, 9, 0, 0, 123000000, time.UTC),
			RetryAt:     time.Date(2026, 11, 1, 12, 0, 30, 0, time.UTC),
			LastEventAt: time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC),
			Delivered:   1<<64 - 1, Folders: []string{"INBOX", "Sent Items", ""}, Kind: mail.ServerExchange, Transport: "graph", Push: "idle"}
		want := map[mail.MailboxID]mail.Status{"a": wantA, "b": {State: "exists"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Statuses =\n%#v\nwant\n%#v", got, want)
		}
		got["a"].Folders[0] = "aliased"
		if again, _ := s.Statuses(ctx, []mail.MailboxID{"a"}); again["a"].Folders[0] != "INBOX" {
			t.Fatal("Statuses returned aliased folders")
		}
		// A multi-byte character straddling the limit is dropped whole.
		odd := "x" + strings.Repeat("é", store.MaxLastError)
		if err := s.PutStatus(ctx, "c", mail.Status{LastError: odd}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Statuses(ctx, []mail.MailboxID{"c"}); got["c"].LastError != odd[:store.MaxLastError-1] {
			t.Fatalf("LastError cut to %d bytes, want %d", len(got["c"].LastError), store.MaxLastError-1)
		}
		// Put replaces the whole record.
		if err := s.PutStatus(ctx, "a", mail.Status{State: "connecting", Node: "el-1"}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Statuses(ctx, []mail.MailboxID{"a"}); !reflect.DeepEqual(got["a"], mail.Status{State: "connecting", Node: "el-1"}) {
			t.Fatalf("after replace: %#v", got["a"])
		}
		// DeleteMailbox deletes the status, registered or not.
		if err := s.PutMailbox(ctx, mb("b")); err != nil {
			t.Fatal(err)
		}
		for _, id := range []mail.MailboxID{"a", "b"} {
			if err := s.DeleteMailbox(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Statuses(ctx, []mail.MailboxID{"a", "b", "c"}); err != nil || len(got) != 1 {
			t.Fatalf("after delete: %v, %v; want only c", got, err)
		}
	})
}
