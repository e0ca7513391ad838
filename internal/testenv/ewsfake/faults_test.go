// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSOAPEnvelopeHandling(t *testing.T) {
	s, c := newFake(t, Options{})

	// Malformed XML and wrong child order: ErrorSchemaValidation faults (HTTP 500),
	// rendered as Exchange does.
	resp, body := c.post(`<?xml version="1.0"?><s:Envelope xmlns:s="` + nsSOAP + `"><s:Body><m:GetFolder xmlns:m="` + nsMsg + `">`)
	code, detail := faultCode(t, resp, body)
	if code != "ErrorSchemaValidation" || path(detail, "MessageXml", "LineNumber") == nil {
		t.Errorf("malformed XML: %s %s", code, body)
	}
	for _, want := range []string{`<faultcode xmlns:a="` + nsTypes + `">a:ErrorSchemaValidation</faultcode>`, `<faultstring xml:lang="en-US">`,
		`<e:ResponseCode xmlns:e="` + nsErrors + `">ErrorSchemaValidation</e:ResponseCode>`, `<t:MessageXml xmlns:t="` + nsTypes + `">`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("fault lacks %s: %s", want, body)
		}
	}
	code, detail = c.fault(`<msg:GetItem><msg:ItemIds><typ:ItemId Id="x"/></msg:ItemIds><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape></msg:GetItem>`)
	if v := path(detail, "MessageXml", "Violation").value(); code != "ErrorSchemaValidation" || !strings.Contains(v, "ItemIds") {
		t.Errorf("wrong order: %s %s", code, v)
	}
	if code, _ := c.fault(`<msg:FindItem Traversal="Deep"><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape><msg:ParentFolderIds><typ:DistinguishedFolderId Id="inbox"/></msg:ParentFolderIds></msg:FindItem>`); code != "ErrorSchemaValidation" {
		t.Errorf("FindItem Traversal=Deep: %s", code)
	}
	if code, _ := c.fault(`<msg:GetFolder><msg:FolderShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:FolderShape><msg:FolderIds><typ:DistinguishedFolderId Id="postbox"/></msg:FolderIds></msg:GetFolder>`); code != "ErrorSchemaValidation" {
		t.Errorf("unknown distinguished folder: %s", code)
	}
	if code, _ := c.fault(`<msg:ResolveNames ReturnFullContactData="true"><msg:UnresolvedEntry>x</msg:UnresolvedEntry></msg:ResolveNames>`); code != "ErrorSchemaValidation" {
		t.Errorf("unimplemented operation: %s", code)
	}
	c.header = `<typ:RequestServerVersion Version="Exchange2099"/>`
	if code, _ := c.fault(getInbox); code != "ErrorInvalidServerVersion" {
		t.Errorf("bad version: %s", code)
	}
	c.header = ""

	// SOAPAction is optional; the path is case-insensitive; other paths and methods fail.
	c.httpHeader = map[string]string{"SOAPAction": `"http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder"`}
	single(t, firstEnv(c.call(getInbox)), "NoError")
	for _, tc := range []struct {
		method, path string
		want         int
	}{{http.MethodPost, "/ews/EXCHANGE.asmx", 200}, {http.MethodGet, "/EWS/Exchange.asmx", 405}, {http.MethodPost, "/EWS/Other.asmx", 404}} {
		req, _ := http.NewRequest(tc.method, s.BaseURL()+tc.path, strings.NewReader(c.envelope(getInbox)))
		req.SetBasicAuth(alice, "pw-alice")
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, err)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

func firstEnv(env *node, _ string) *node { return env }

func TestBodyLimit(t *testing.T) {
	_, c := newFake(t, Options{MaxRequestBytes: 1024})
	resp, _ := c.post(c.envelope(`<msg:GetFolder>` + strings.Repeat(" ", 2048) + `</msg:GetFolder>`))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized request: HTTP %d", resp.StatusCode)
	}
}

func TestBusyFailNextDisable(t *testing.T) {
	s, c := newFake(t, Options{})
	s.Busy(time.Minute, 1500*time.Millisecond)
	code, detail := c.fault(getInbox)
	v := path(detail, "MessageXml", "Value")
	if name, _ := v.attr("Name"); code != "ErrorServerBusy" || name != "BackOffMilliseconds" || v.value() != "1500" {
		t.Errorf("busy: %s %v", code, kidNames(detail))
	}
	s.Busy(0, 0)
	single(t, firstEnv(c.call(getInbox)), "NoError")

	for _, tc := range []struct {
		status int
		check  func(*http.Response, []byte) bool
	}{
		{503, func(r *http.Response, b []byte) bool {
			return bytes.Contains(b, []byte("HTTP Error 503. The service is unavailable."))
		}},
		{500, func(r *http.Response, b []byte) bool {
			return bytes.Contains(b, []byte("Server Error in '/EWS' Application."))
		}},
		{302, func(r *http.Response, b []byte) bool {
			return r.Header.Get("Location") == "/ews/genericerrorpage.htm?aspxerrorpath=/ews/exchange.asmx"
		}},
	} {
		s.FailNext(2, tc.status)
		c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		for range 2 {
			resp, body := c.post(c.envelope(getInbox))
			if resp.StatusCode != tc.status || !tc.check(resp, body) {
				t.Errorf("FailNext(%d): HTTP %d %s", tc.status, resp.StatusCode, body)
			}
		}
		single(t, firstEnv(c.call(getInbox)), "NoError")
	}

	mustOK(t, s.DisableEWS(alice))
	if resp, _ := c.post(c.envelope(getInbox)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("EWS disabled: HTTP %d", resp.StatusCode)
	}
	mustOK(t, s.EnableEWS(alice))
	single(t, firstEnv(c.call(getInbox)), "NoError")
	if st := s.Stats(); st.Requests["ErrorServerBusy"] != 1 || st.Requests["injected-503"] != 2 || st.Requests["forbidden"] != 1 {
		t.Errorf("stats %+v", st.Requests)
	}
}

func TestPullSubscription(t *testing.T) {
	s, c := newFake(t, Options{})
	env, _ := c.call(`<msg:Subscribe><msg:PullSubscriptionRequest><typ:FolderIds><typ:DistinguishedFolderId Id="inbox"/></typ:FolderIds>` +
		`<typ:EventTypes><typ:EventType>NewMailEvent</typ:EventType></typ:EventTypes><typ:Timeout>10</typ:Timeout>` +
		`</msg:PullSubscriptionRequest></msg:Subscribe>`)
	m := single(t, env, "NoError")
	sub, wm := m.child(nsMsg, "SubscriptionId").value(), m.child(nsMsg, "Watermark").value()
	get := func() *node {
		env, _ := c.call(`<msg:GetEvents><msg:SubscriptionId>` + sub + `</msg:SubscriptionId><msg:Watermark>` + wm + `</msg:Watermark></msg:GetEvents>`)
		return path(single(t, env, "NoError"), "Notification")
	}
	if n := get(); path(n, "StatusEvent") == nil {
		t.Errorf("idle GetEvents: %v", kidNames(n))
	}
	id, err := s.Deliver(alice, "inbox", testMessage("pulled", "x@example.org", alice))
	mustOK(t, err)
	n := get()
	ev := path(n, "NewMailEvent")
	if got, _ := path(ev, "ItemId").attr("Id"); got != id || path(ev, "Watermark") == nil || path(n, "MoreEvents").value() != "false" {
		t.Errorf("GetEvents: %v / %v", kidNames(n), kidNames(ev))
	}
	env, _ = c.call(`<msg:Unsubscribe><msg:SubscriptionId>` + sub + `</msg:SubscriptionId></msg:Unsubscribe>`)
	single(t, env, "NoError")
	env, _ = c.call(`<msg:Unsubscribe><msg:SubscriptionId>` + sub + `</msg:SubscriptionId></msg:Unsubscribe>`)
	single(t, env, "ErrorSubscriptionNotFound")
}
