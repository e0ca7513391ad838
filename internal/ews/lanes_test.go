// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv/ewsfake"
)

// NTLM authenticates a connection in three messages: with a stream open and
// calls in parallel, every handshake must stay on its connection (a lane),
// or the server refuses the last message.
func TestNTLMUnderConcurrency(t *testing.T) {
	fake := ewsfake.NewT(t, ewsfake.Options{Auth: ewsfake.AuthNTLM, Heartbeat: 100 * time.Millisecond})
	if err := fake.AddMailbox("alice@example.com", `CORP\alice`, "alicepw"); err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []AuthScheme{AuthNTLM, AuthAuto} {
		c, err := New(Options{URL: fake.URL(), Auth: Auth{Scheme: scheme, User: `CORP\alice`, Password: "alicepw"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sub, err := c.Subscribe(ctx, Target{}, []FolderID{{Distinguished: "inbox"}}, nil)
		if err != nil {
			t.Fatalf("%v: subscribe: %v", scheme, err)
		}
		st, err := c.Stream(ctx, Target{}, []string{sub}, 1, 5*time.Second)
		if err != nil {
			t.Fatalf("%v: stream: %v", scheme, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Go(func() {
				if _, err := c.GetFolder(ctx, Target{}, FolderID{Distinguished: "inbox"}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%v: GetFolder beside a stream: %v", scheme, err)
		}
		if _, err := fake.Deliver("alice@example.com", "inbox", []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := st.Next()
			if err != nil {
				t.Fatalf("%v: stream: %v", scheme, err)
			}
			if len(m.Notifications) > 0 {
				break
			}
		}
		st.Close()
		c.CloseIdleConnections()
		cancel()
	}
}

// A client speaks HTTP/1.1 only, even over a transport that allows HTTP/2
// to a server that prefers it: NTLM authenticates a connection, which an
// HTTP/2 stream is not.
func TestHTTP1Only(t *testing.T) {
	var protos sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		http.Error(w, "nope", http.StatusNotFound)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	base := srv.Client().Transport.(*http.Transport).Clone()
	base.ForceAttemptHTTP2 = true
	for _, scheme := range []AuthScheme{AuthBasic, AuthNTLM} {
		c, err := New(Options{URL: srv.URL + "/EWS/Exchange.asmx", Transport: base, Auth: Auth{Scheme: scheme, User: "u", Password: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.GetFolder(context.Background(), Target{}, FolderID{Distinguished: "inbox"})
		c.CloseIdleConnections()
	}
	protos.Range(func(k, _ any) bool {
		if k != "HTTP/1.1" {
			t.Errorf("a request went out as %v", k)
		}
		return true
	})
	if _, ok := protos.Load("HTTP/1.1"); !ok {
		t.Error("no request reached the server")
	}
}
