// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"net/http"
	"sync"
	"testing"
)

const backend = "CO1PR06MB222.namprd06.prod.outlook.com~1941996295"

// The affinity procedure for a group: subscribe the anchor (the server sets
// the backend cookie), subscribe a member with the anchor's X-AnchorMailbox
// and the cookie, then stream with the same headers.
func TestImpersonationAndAffinity(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		switch req.Op.Name.Local {
		case "Subscribe":
			if r.Header.Get("X-PreferServerAffinity") == "true" && r.Header.Get(affinityCookie) == "" {
				// The anchor's subscribe: the backend tells its cookie.
				http.SetCookie(w, &http.Cookie{Name: affinityCookie, Value: backend, Path: "/", Secure: true, HttpOnly: true})
				http.SetCookie(w, &http.Cookie{Name: "X-BackEndCookie", Value: "S-1-5-21-xyz=u56Lnp2ejJqByM3Hz8bPz8",
					Path: "/EWS", Secure: true, HttpOnly: true})
			}
			reply(w, opResp("Subscribe", okMsg("Subscribe", `<m:SubscriptionId>`+testSubID+`</m:SubscriptionId>`)))
		case "GetStreamingEvents":
			reply(w, streamEnv(streamMsg("", "Closed")))
		}
	})
	c := newClient(t, f.url(), nil)
	aff := &Affinity{}
	anchor := Target{Impersonate: "a.anchor@contoso.com", Affinity: aff}
	if _, err := c.Subscribe(ctxT(t), anchor, []FolderID{{Distinguished: "inbox"}}, nil); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	if r.Header.Get("X-AnchorMailbox") != "a.anchor@contoso.com" || r.Header.Get("X-PreferServerAffinity") != "true" {
		t.Errorf("anchor headers %v", r.Header)
	}
	if got := r.Doc.at(t, "s:Header", "t:ExchangeImpersonation", "t:ConnectingSID", "t:SmtpAddress").Text; got != "a.anchor@contoso.com" {
		t.Errorf("impersonation %q", got)
	}
	if aff.Cookie() != backend {
		t.Fatalf("cookie = %q", aff.Cookie())
	}

	member := Target{Impersonate: testMailbox, Anchor: "a.anchor@contoso.com", Affinity: aff}
	if _, err := c.Subscribe(ctxT(t), member, []FolderID{{Distinguished: "inbox"}}, nil); err != nil {
		t.Fatal(err)
	}
	r = f.last(t)
	if r.Header.Get("X-AnchorMailbox") != "a.anchor@contoso.com" {
		t.Errorf("member X-AnchorMailbox = %q", r.Header.Get("X-AnchorMailbox"))
	}
	if r.Header.Get(affinityCookie) != backend || r.Header.Get("Cookie") != affinityCookie+"="+backend {
		t.Errorf("cookie not replayed: header %q, Cookie %q", r.Header.Get(affinityCookie), r.Header.Get("Cookie"))
	}
	if got := r.Doc.at(t, "s:Header", "t:ExchangeImpersonation", "t:ConnectingSID", "t:SmtpAddress").Text; got != testMailbox {
		t.Errorf("member impersonation %q", got)
	}
	// The response repeated no cookie: the cached one stays.
	if aff.Cookie() != backend {
		t.Errorf("cookie lost: %q", aff.Cookie())
	}

	s, err := c.Stream(ctxT(t), member, []string{testSubID, testSubID + "2"}, 30, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if r := f.last(t); r.Header.Get(affinityCookie) != backend || r.Header.Get("X-PreferServerAffinity") != "true" {
		t.Errorf("stream headers %v", r.Header)
	}

	// Without a Target: no impersonation, no routing headers.
	if _, err := c.Subscribe(ctxT(t), Target{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	r = f.last(t)
	wantNames(t, r.Doc.at(t, "s:Header"), "t:RequestServerVersion")
	for _, h := range []string{"X-AnchorMailbox", "X-PreferServerAffinity", affinityCookie, "Cookie"} {
		if r.Header.Get(h) != "" {
			t.Errorf("%s sent without a target", h)
		}
	}
}

func TestAffinityConcurrent(t *testing.T) {
	a := &Affinity{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				a.SetCookie(backend[:i+1])
				_ = a.Cookie()
			}
		}()
	}
	wg.Wait()
	a.SetCookie("")
	if a.Cookie() != "" {
		t.Error("SetCookie(\"\") did not forget")
	}
}
