// SPDX-License-Identifier: Apache-2.0

package service

import (
	"context"
	"errors"
	"testing"

	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/placement"
)

type fakePlacement struct {
	mbs    []*mail.Mailbox
	states map[mail.MailboxID]mail.Status
}

func (f *fakePlacement) Subscribe(context.Context, *mail.Mailbox, mail.Mode) error { return nil }
func (f *fakePlacement) Close(context.Context, mail.MailboxID) error               { return nil }
func (f *fakePlacement) States(_ context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	out := map[mail.MailboxID]mail.Status{}
	for _, id := range ids {
		if st, ok := f.states[id]; ok {
			out[id] = st
		}
	}
	return out, nil
}

type listingPlacement struct{ *fakePlacement }

func (l listingPlacement) Mailboxes(context.Context) ([]*mail.Mailbox, error) { return l.mbs, nil }
func (l listingPlacement) Mailbox(_ context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	for _, mb := range l.mbs {
		if mb.ID == id {
			return mb, nil
		}
	}
	return nil, nil
}
func (l listingPlacement) NodeLoads(context.Context) ([]placement.NodeLoad, error) {
	return []placement.NodeLoad{{Capacity: 5, Owned: 1, Self: true}}, nil
}

type fakeLoads struct{}

func (fakeLoads) Load(context.Context, *mail.Mailbox, mail.Query) error { return nil }
func (fakeLoads) Progress(id mail.MailboxID) (mail.HistoryProgress, bool) {
	return mail.HistoryProgress{State: mail.HistoryDone, Found: 2}, id == "a"
}
func (fakeLoads) Forget(mail.MailboxID) {}

type fakeCounter struct{}

func (fakeCounter) Counts() map[string]int { return nil }

func TestInventory(t *testing.T) {
	fp := &fakePlacement{
		mbs: []*mail.Mailbox{
			{ID: "a", Kind: mail.ServerIMAP, SenderAddress: "a@example.com", Password: "secret"},
			{ID: "b", Kind: mail.ServerExchange, SenderAddress: "b@example.com"},
		},
		states: map[mail.MailboxID]mail.Status{"a": {State: mail.StateError, ErrorClass: "auth"}},
	}
	s, err := New(Options{Placement: listingPlacement{fp}, Loads: fakeLoads{}, Counter: fakeCounter{}})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := s.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inv.Mode != "single" || len(inv.Nodes) != 1 || inv.Nodes[0].Capacity != 5 || len(inv.Mailboxes) != 2 {
		t.Fatalf("%+v", inv)
	}
	a, b := inv.Mailboxes[0], inv.Mailboxes[1]
	if a.Address != "a@example.com" || a.Status == nil || a.Status.ErrorClass != "auth" || a.History == nil || a.History.Found != 2 {
		t.Errorf("a: %+v", a)
	}
	if b.Status != nil || b.History != nil || b.Kind != mail.ServerExchange {
		t.Errorf("b: %+v", b)
	}

	// A placement that cannot list: unsupported (501).
	s, _ = New(Options{Placement: fp, Loads: fakeLoads{}, Counter: fakeCounter{}})
	if _, err := s.Inventory(context.Background()); !errors.Is(err, httpapi.ErrUnsupported) {
		t.Errorf("err = %v", err)
	}
}
