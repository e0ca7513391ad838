// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv/ewsfake"
)

func startAdapter(t *testing.T, o Options) *Adapter {
	t.Helper()
	a := New(o)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	return a
}

func mailbox(fake *ewsfake.Server, user, pw string) *mail.Mailbox {
	return &mail.Mailbox{ID: mail.MailboxID(user), Kind: mail.ServerExchange, Host: fake.URL(), UserName: user, Password: pw,
		SenderAddress: user, Extra: map[string]string{creatio.ExtraServiceURL: fake.URL()}}
}

// With an impersonation account, mailboxes share streams in full groups:
// 1,000 mailboxes in groups of 200 are 5 streams carrying 1,000 subscriptions
// (more streams than one client has pooled connections for NTLM),
// and a notification reaches the right mailbox.
func TestGroupsAtScale(t *testing.T) {
	const n, size = 1000, 200
	fake := ewsfake.NewT(t, ewsfake.Options{ServiceAccount: "svc@example.com", ServicePassword: "svcpw", Heartbeat: 200 * time.Millisecond,
		HangingConnectionLimit: 1000})
	a := startAdapter(t, Options{Impersonation: &Account{User: "svc@example.com", Password: "svcpw"}, GroupSize: size, BaselineSlack: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessions := make([]*Session, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		u := fmt.Sprintf("m%d@example.com", i)
		if err := fake.AddMailbox(u, "", "pw"); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			s, err := a.Open(ctx, mailbox(fake, u, "pw"))
			if err != nil {
				errs <- err
				return
			}
			sessions[i] = s
			if _, err := s.Wait(ctx, []string{s.inbox}, time.Second); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := fake.Stats()
		if st.OpenStreams == (n+size-1)/size && st.Subscriptions == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake: %d streams, %d subscriptions; want %d and %d", st.OpenStreams, st.Subscriptions, (n+size-1)/size, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, i := range []int{0, 199, 200, 999} {
		if _, err := fake.Deliver(sessions[i].addr, "inbox", []byte("Subject: hi\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		got, err := sessions[i].Wait(ctx, []string{sessions[i].inbox}, 10*time.Second)
		if err != nil || len(got) != 1 || got[0] != sessions[i].inbox {
			t.Fatalf("mailbox %d: Wait = %v, %v; want its inbox", i, got, err)
		}
	}
}
