// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testMessage builds a small RFC 5322 message.
func testMessage(subject, from, to string) []byte {
	return fmt.Appendf(nil, "From: Sender <%s>\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n"+
		"Message-ID: <%d.%s@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, %s.\r\n",
		from, to, subject, time.Now().UnixNano(), subject[:1], to)
}

// soapClient posts hand-written SOAP to a fake and parses the answers.
type soapClient struct {
	t          testing.TB
	s          *Server
	user, pass string
	hc         *http.Client
	header     string            // extra SOAP header elements
	httpHeader map[string]string // extra HTTP headers
}

func newClient(t testing.TB, s *Server, user, pass string) *soapClient {
	return &soapClient{t: t, s: s, user: user, pass: pass, hc: &http.Client{Timeout: 10 * time.Second}}
}

// envelope wraps an operation. Prefixes are deliberately not the ones Exchange
// uses, so the fake's namespace handling is exercised.
func (c *soapClient) envelope(op string) string {
	return `<?xml version="1.0" encoding="utf-8"?>` +
		`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:msg="` + nsMsg + `" xmlns:typ="` + nsTypes + `">` +
		`<soap:Header><typ:RequestServerVersion Version="Exchange2013_SP1"/>` + c.header + `</soap:Header>` +
		`<soap:Body>` + op + `</soap:Body></soap:Envelope>`
}

// post sends a raw body and returns the response with its body read.
func (c *soapClient) post(body string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.s.URL(), strings.NewReader(body))
	mustOK(c.t, err)
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	for k, v := range c.httpHeader {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	mustOK(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(c.t, err)
	return resp, b
}

// call posts an operation and expects HTTP 200; it returns the parsed envelope and
// the raw body.
func (c *soapClient) call(op string) (*node, string) {
	c.t.Helper()
	resp, body := c.post(c.envelope(op))
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	env, err := parseXML(bytes.NewReader(body))
	mustOK(c.t, err)
	return env, string(body)
}

// fault posts an operation and expects a SOAP fault; it returns the ResponseCode.
func (c *soapClient) fault(op string) (code string, detail *node) {
	c.t.Helper()
	resp, body := c.post(c.envelope(op))
	return faultCode(c.t, resp, body)
}

func faultCode(t testing.TB, resp *http.Response, body []byte) (string, *node) {
	t.Helper()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("HTTP %d, want 500 with a fault: %s", resp.StatusCode, body)
	}
	env, err := parseXML(bytes.NewReader(body))
	mustOK(t, err)
	f := env.child(nsSOAP, "Body").child(nsSOAP, "Fault")
	if f == nil {
		t.Fatalf("no Fault: %s", body)
	}
	d := f.child("", "detail")
	return d.child(nsErrors, "ResponseCode").value(), d
}

// messages returns the response messages of an envelope.
func messages(t testing.TB, env *node) []*node {
	t.Helper()
	body := env.child(nsSOAP, "Body")
	if body == nil || len(body.kids) != 1 {
		t.Fatalf("unexpected body")
	}
	rm := body.kids[0].child(nsMsg, "ResponseMessages")
	if rm == nil {
		t.Fatalf("no ResponseMessages in %s", body.kids[0].local)
	}
	return rm.kids
}

// single returns the single response message and checks its ResponseCode.
func single(t testing.TB, env *node, code string) *node {
	t.Helper()
	ms := messages(t, env)
	if len(ms) != 1 {
		t.Fatalf("%d response messages, want 1", len(ms))
	}
	checkCode(t, ms[0], code)
	return ms[0]
}

func checkCode(t testing.TB, m *node, code string) {
	t.Helper()
	got := m.child(nsMsg, "ResponseCode").value()
	class, _ := m.attr("ResponseClass")
	if got != code {
		t.Fatalf("ResponseCode %s (%s: %s), want %s", got, class, m.child(nsMsg, "MessageText").value(), code)
	}
	wantClass := "Success"
	if code != "NoError" {
		wantClass = "Error"
	}
	if class != wantClass {
		t.Fatalf("ResponseClass %s, want %s", class, wantClass)
	}
}

// path walks children by local name (any namespace).
func path(n *node, names ...string) *node {
	for _, name := range names {
		if n == nil {
			return nil
		}
		var next *node
		for _, k := range n.kids {
			if k.local == name {
				next = k
				break
			}
		}
		n = next
	}
	return n
}

func kidNames(n *node) []string {
	var out []string
	for _, k := range n.kids {
		out = append(out, k.local)
	}
	return out
}

// newFake starts a fake with one mailbox (alice) and returns a Basic client for it.
func newFake(t testing.TB, opts Options) (*Server, *soapClient) {
	t.Helper()
	s := NewT(t, opts)
	mustOK(t, s.AddMailbox("alice@ewsfake.test", `EWSFAKE\alice`, "pw-alice"))
	return s, newClient(t, s, "alice@ewsfake.test", "pw-alice")
}

func itoa(i int) string { return fmt.Sprint(i) }
