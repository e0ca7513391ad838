// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func impersonate(smtp string) string {
	return `<typ:ExchangeImpersonation><typ:ConnectingSID><typ:SmtpAddress>` + smtp + `</typ:SmtpAddress></typ:ConnectingSID></typ:ExchangeImpersonation>`
}

func TestImpersonation(t *testing.T) {
	s, c := newFake(t, Options{ServiceAccount: `EWSFAKE\svc`, ServicePassword: "pw-svc", Heartbeat: 50 * time.Millisecond, HangingConnectionLimit: 1})
	mustOK(t, s.AddMailbox("bob@ewsfake.test", "", "pw-bob"))
	svc := newClient(t, s, `EWSFAKE\svc`, "pw-svc")

	// Acting as alice through impersonation.
	svc.header = impersonate(alice)
	env, _ := svc.call(getInbox)
	id, _ := path(single(t, env, "NoError"), "Folders", "Folder", "FolderId").attr("Id")
	if id != s.FolderID(alice, "inbox") {
		t.Errorf("impersonated inbox %s", id)
	}
	subA := svc.subscribe(false)
	svc.header = `<typ:ExchangeImpersonation><typ:ConnectingSID><typ:PrincipalName>bob@ewsfake.test</typ:PrincipalName></typ:ConnectingSID></typ:ExchangeImpersonation>`
	subB := svc.subscribe(false)

	// Only the service account may impersonate; unknown addresses are refused.
	c.header = impersonate("bob@ewsfake.test")
	if code, _ := c.fault(getInbox); code != "ErrorImpersonateUserDenied" {
		t.Errorf("alice impersonating: %s", code)
	}
	svc.header = impersonate("nobody@ewsfake.test")
	if code, _ := svc.fault(getInbox); code != "ErrorNonExistentMailbox" {
		t.Errorf("unknown mailbox: %s", code)
	}

	// The service account streams subscriptions it created for several mailboxes on
	// one connection; the budget is the impersonated mailbox's, so a second stream
	// impersonating alice is over the limit (1) while one impersonating bob is not.
	rs := openRawStream(t, s, `EWSFAKE\svc`, "pw-svc", []string{subA, subB})
	if rs.status != 200 {
		t.Fatalf("HTTP %d", rs.status)
	}
	rs.envelope(time.Second)
	_, err := s.Deliver("bob@ewsfake.test", "inbox", testMessage("for bob", "x@example.org", "bob@ewsfake.test"))
	mustOK(t, err)
	for {
		m, _ := rs.envelope(time.Second)
		if n := path(m, "Notifications", "Notification"); n != nil {
			if path(n, "SubscriptionId").value() != subB {
				t.Errorf("notification for %s", path(n, "SubscriptionId").value())
			}
			break
		}
	}
	if st := s.Stats(); st.StreamsByLogin[`ewsfake\svc`] != 1 {
		t.Errorf("budget without impersonation header: %+v", st.StreamsByLogin)
	}
}

func TestImpersonatedStreamBudget(t *testing.T) {
	s, _ := newFake(t, Options{ServiceAccount: "svc@ewsfake.test", ServicePassword: "pw-svc", Heartbeat: 50 * time.Millisecond, HangingConnectionLimit: 1})
	mustOK(t, s.AddMailbox("bob@ewsfake.test", "", "pw-bob"))
	svc := newClient(t, s, "svc@ewsfake.test", "pw-svc")
	svc.header = impersonate(alice)
	subA := svc.subscribe(false)
	svc.header = impersonate("bob@ewsfake.test")
	subB := svc.subscribe(false)

	stream := func(as string, ids ...string) string {
		var sb strings.Builder
		for _, id := range ids {
			sb.WriteString(`<typ:SubscriptionId>` + id + `</typ:SubscriptionId>`)
		}
		svc.header = impersonate(as)
		resp, err := streamRequest(svc, `<msg:GetStreamingEvents><msg:SubscriptionIds>`+sb.String()+
			`</msg:SubscriptionIds><msg:ConnectionTimeout>1</msg:ConnectionTimeout></msg:GetStreamingEvents>`)
		mustOK(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		return string(buf[:n])
	}
	if got := stream(alice, subA, subB); !strings.Contains(got, "ConnectionStatus>OK") {
		t.Fatalf("first stream: %s", got)
	}
	if got := stream(alice, subA); !strings.Contains(got, "ErrorExceededConnectionCount") {
		t.Errorf("second stream as alice: %s", got)
	}
	if got := stream("bob@ewsfake.test", subB); !strings.Contains(got, "ConnectionStatus>OK") {
		t.Errorf("stream as bob: %s", got)
	}
	if st := s.Stats(); st.StreamsByLogin[alice] != 1 || st.StreamsByLogin["bob@ewsfake.test"] != 1 {
		t.Errorf("budgets %+v", st.StreamsByLogin)
	}
}

// streamRequest posts a GetStreamingEvents and returns the open response.
func streamRequest(c *soapClient, op string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, c.s.URL(), strings.NewReader(c.envelope(op)))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.user, c.pass)
	for k, v := range c.httpHeader {
		req.Header.Set(k, v)
	}
	return (&http.Client{}).Do(req)
}

// twoBackendMailboxes adds mailboxes until two land on different backends.
func twoBackendMailboxes(t *testing.T, s *Server) (string, string) {
	t.Helper()
	first := ""
	for i := 0; ; i++ {
		smtp := "user" + itoa(i) + "@ewsfake.test"
		mustOK(t, s.AddMailbox(smtp, "", "pw"))
		switch {
		case first == "":
			first = smtp
		case s.BackendOf(smtp) != s.BackendOf(first):
			return first, smtp
		}
	}
}

func TestAffinityAcrossBackends(t *testing.T) {
	s := NewT(t, Options{Backends: 2, ServiceAccount: "svc@ewsfake.test", ServicePassword: "pw-svc", Heartbeat: 50 * time.Millisecond})
	anchor, other := twoBackendMailboxes(t, s)
	svc := newClient(t, s, "svc@ewsfake.test", "pw-svc")

	// Subscribe the anchor asking for affinity: the answer names its backend.
	svc.header = impersonate(anchor)
	svc.httpHeader = map[string]string{"X-AnchorMailbox": anchor, "X-PreferServerAffinity": "true"}
	resp, body := svc.post(svc.envelope(`<msg:Subscribe><msg:StreamingSubscriptionRequest><typ:FolderIds><typ:DistinguishedFolderId Id="inbox"/></typ:FolderIds>` +
		`<typ:EventTypes><typ:EventType>NewMailEvent</typ:EventType></typ:EventTypes></msg:StreamingSubscriptionRequest></msg:Subscribe>`))
	cookie := resp.Header.Get("Set-Cookie")
	want := "X-BackEndOverrideCookie=" + s.AffinityCookie(anchor) + "; path=/; secure; HttpOnly"
	if cookie != want || !strings.Contains(s.AffinityCookie(anchor), s.BackendOf(anchor)+"~") {
		t.Errorf("Set-Cookie %q, want %q", cookie, want)
	}
	env, err := parseXML(bytes.NewReader(body))
	mustOK(t, err)
	subAnchor := single(t, env, "NoError").child(nsMsg, "SubscriptionId").value()

	// The other member subscribes through the anchor's backend (cookie as a header,
	// the way exchangelib sends it); without the cookie it would land on its own.
	svc.header = impersonate(other)
	svc.httpHeader = map[string]string{"X-AnchorMailbox": anchor, "X-PreferServerAffinity": "true", "X-BackEndOverrideCookie": s.AffinityCookie(anchor)}
	subOther := svc.subscribe(false)
	svc.httpHeader = map[string]string{"X-AnchorMailbox": other}
	subLost := svc.subscribe(false)

	// Streaming both group subscriptions with the cookie (as a Cookie) works ...
	rs := openRawStream(t, s, "svc@ewsfake.test", "pw-svc", []string{subAnchor, subOther}, "Cookie: X-BackEndOverrideCookie="+s.AffinityCookie(anchor))
	if m, _ := rs.envelope(time.Second); status(m) != "OK" {
		t.Errorf("grouped stream: %v", kidNames(m))
	}
	// ... while the subscription made on the other backend is not found there: that
	// is what losing affinity looks like.
	rs = openRawStream(t, s, "svc@ewsfake.test", "pw-svc", []string{subAnchor, subLost}, "Cookie: X-BackEndOverrideCookie="+s.AffinityCookie(anchor))
	m, _ := rs.answer()
	if m.child(nsMsg, "ResponseCode").value() != "ErrorSubscriptionNotFound" || path(m, "ErrorSubscriptionIds", "SubscriptionId").value() != subLost {
		t.Errorf("subscription from another backend: %v", kidNames(m))
	}
}
